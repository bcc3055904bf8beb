# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
memcached binary protocol: a 24-byte header (body length u32be at offset 8) and the body
(extras, key, value). One store for every connection and worker, under one lock.

Quiet commands (GETQ, SETQ...) answer only misses or failures, and a client sends NOOP to
learn that they are done: that needs replies in request order, which parallel workers do
not give. The worker that gets a NOOP therefore waits until every request the connection
sent before it has been answered: libmemcached numbers its requests in `opaque`.
"""
import struct
import threading
import time

from .common import Corrupt, Reader, Result

FRAMING = "u32be+24@8"
REQ, RES = 0x80, 0x81
HDR = struct.Struct(">BBHBBHIIQ")

GET, SET, ADD, REPLACE, DELETE, INCR, DECR, QUIT, FLUSH, GETQ, NOOP, VERSION, GETK, GETKQ, \
    APPEND, PREPEND, STAT, SETQ, ADDQ, REPLACEQ, DELETEQ, INCRQ, DECRQ, QUITQ, FLUSHQ, \
    APPENDQ, PREPENDQ = range(0x1B)
TOUCH, GAT, GATQ, GATK, GATKQ = 0x1C, 0x1D, 0x1E, 0x23, 0x24
NAMES = {GET: "get", SET: "set", ADD: "add", REPLACE: "replace", DELETE: "delete",
         INCR: "incr", DECR: "decr", QUIT: "quit", FLUSH: "flush", GETQ: "getq", NOOP: "noop",
         VERSION: "version", GETK: "getk", GETKQ: "getkq", APPEND: "append",
         PREPEND: "prepend", STAT: "stat", SETQ: "setq", ADDQ: "addq", REPLACEQ: "replaceq",
         DELETEQ: "deleteq", INCRQ: "incrq", DECRQ: "decrq", QUITQ: "quitq", FLUSHQ: "flushq",
         APPENDQ: "appendq", PREPENDQ: "prependq", TOUCH: "touch", GAT: "gat", GATQ: "gatq",
         GATK: "gatk", GATKQ: "gatkq"}
QUIET = {GETQ: GET, GETKQ: GETK, SETQ: SET, ADDQ: ADD, REPLACEQ: REPLACE, DELETEQ: DELETE,
         INCRQ: INCR, DECRQ: DECR, QUITQ: QUIT, FLUSHQ: FLUSH, APPENDQ: APPEND,
         PREPENDQ: PREPEND, GATQ: GAT, GATKQ: GATK}
# extras length each request must carry (None: 0 or 4 allowed)
EXTRAS = {SET: 8, ADD: 8, REPLACE: 8, INCR: 20, DECR: 20, FLUSH: None, TOUCH: 4, GAT: 4,
          GATK: 4}
OK, NOT_FOUND, EXISTS, NOT_STORED, NON_NUMERIC, UNKNOWN = 0, 1, 2, 5, 6, 0x81
VERSION_STRING = b"1.6.0-kcm"


NOOP_WAIT_S = 5


def request_seq(opaque):
    """libmemcached 1.1 numbers requests 1, 2, 3... in the high half of opaque."""
    return opaque >> 16 if opaque and not opaque & 0xFFFF else opaque


class ConnState:
    def __init__(self):
        self.cond = threading.Condition()
        self.done = set()	# opaques handled so far


class Server:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.store = {}		# key -> [value, flags, cas]
        self.cas = 0
        self.sets = self.hits = self.misses = self.noop_timeouts = 0

    def new_conn(self, cid):
        return ConnState()

    def next_cas(self):
        self.cas += 1
        return self.cas

    def handle(self, st, msg, ctx):
        r = Reader(msg)
        magic, op, klen, elen, dtype, _, blen, opaque, cas = HDR.unpack(r.take(24, "header"))
        if magic != REQ:
            raise Corrupt(f"magic {magic:#x} is not a request")
        if blen != len(msg) - 24 or klen + elen > blen:
            raise Corrupt(f"body length {blen} (key {klen}, extras {elen}) disagrees with "
                          f"the message size {len(msg)}")
        extras = r.take(elen, "extras")
        key = r.take(klen, "key")
        value = r.take(blen - klen - elen, "value")
        r.done("memcached request")
        base = QUIET.get(op, op)
        want = EXTRAS.get(base, 0)
        if base in EXTRAS and (len(extras) != want if want is not None
                               else len(extras) not in (0, 4)):
            raise Corrupt(f"{NAMES.get(op, op)} with {len(extras)} bytes of extras")
        if op == NOOP:
            self.wait_before(st, opaque)
        status, rextras, rkey, rvalue, rcas = self.apply(base, extras, key, value, cas)
        if op not in QUIET:
            answer = True
        elif base in (GET, GETK, GAT, GATK):
            answer = status == OK	# quiet gets answer hits only
        else:
            answer = status != OK	# quiet updates answer failures only
        if answer:
            body = rextras + rkey + rvalue
            ctx.send(HDR.pack(RES, op, len(rkey), len(rextras), 0, status, len(body), opaque,
                              rcas) + body)
        with st.cond:
            st.done.add(request_seq(opaque))
            st.cond.notify_all()
        return Result(NAMES.get(op, f"op{op:#x}"), [(op, bytes(key), opaque)])

    def wait_before(self, st, opaque):
        """Hold a NOOP until the requests numbered below it were answered (see above)."""
        seq = request_seq(opaque)
        deadline = time.monotonic() + NOOP_WAIT_S
        with st.cond:
            while True:
                missing = [s for s in range(max(1, seq - 4096), seq) if s not in st.done]
                if not missing:
                    return
                left = deadline - time.monotonic()
                if left <= 0 or not st.cond.wait(left):
                    with self.lock:
                        self.noop_timeouts += 1
                    return

    def apply(self, op, extras, key, value, cas):
        with self.lock:
            item = self.store.get(key)
            if op in (GET, GETK, GAT, GATK):
                if item is None:
                    self.misses += 1
                    return NOT_FOUND, b"", key if op in (GETK, GATK) else b"", b"Not found", 0
                self.hits += 1
                return (OK, struct.pack(">I", item[1]), key if op in (GETK, GATK) else b"",
                        item[0], item[2])
            if op in (SET, ADD, REPLACE):
                flags = struct.unpack(">I", extras[:4])[0]
                if op == ADD and item is not None:
                    return EXISTS, b"", b"", b"Data exists for key.", 0
                if op == REPLACE and item is None:
                    return NOT_STORED, b"", b"", b"Not stored.", 0
                if cas and (item is None or item[2] != cas):
                    return EXISTS if item else NOT_FOUND, b"", b"", b"", 0
                self.sets += 1
                self.store[key] = [bytes(value), flags, self.next_cas()]
                return OK, b"", b"", b"", self.store[key][2]
            if op in (APPEND, PREPEND):
                if item is None:
                    return NOT_STORED, b"", b"", b"Not stored.", 0
                item[0] = item[0] + value if op == APPEND else value + item[0]
                item[2] = self.next_cas()
                return OK, b"", b"", b"", item[2]
            if op == DELETE:
                if item is None:
                    return NOT_FOUND, b"", b"", b"Not found", 0
                del self.store[key]
                return OK, b"", b"", b"", 0
            if op in (INCR, DECR):
                delta, initial, expiry = struct.unpack(">QQI", extras)
                if item is None:
                    if expiry == 0xFFFFFFFF:
                        return NOT_FOUND, b"", b"", b"Not found", 0
                    n = initial
                else:
                    if not item[0].isdigit():
                        return NON_NUMERIC, b"", b"", b"Non-numeric server-side value", 0
                    n = int(item[0])
                    n = (n + delta) % 2**64 if op == INCR else max(0, n - delta)
                self.store[key] = [str(n).encode(), 0, self.next_cas()]
                return OK, b"", b"", struct.pack(">Q", n), self.store[key][2]
            if op == TOUCH:
                if item is None:
                    return NOT_FOUND, b"", b"", b"Not found", 0
                return OK, b"", b"", b"", item[2]
            if op == FLUSH:
                self.store.clear()
                return OK, b"", b"", b"", 0
            if op in (NOOP, QUIT):
                return OK, b"", b"", b"", 0
            if op == VERSION:
                return OK, b"", b"", VERSION_STRING, 0
            if op == STAT:
                return OK, b"", b"", b"", 0	# the terminating empty stat
            return UNKNOWN, b"", b"", b"Unknown command", 0

    def summary(self):
        return {"items": len(self.store), "sets": self.sets, "hits": self.hits,
                "misses": self.misses, "noop_timeouts": self.noop_timeouts}
