# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
Kafka: a one-broker cluster (node 0 at the --listen address) with enough of the protocol
for librdkafka's producer and consumer (kcat -P / kcat -C): ApiVersions v0-3, Metadata
v1-8, Produce v3-7, ListOffsets v1-5, Fetch v4-11, all non-flexible but ApiVersions v3.
Every topic exists with one partition; produced record batches (magic 2) are checked
(length, CRC-32C, every record) and stored as they came, with their base offset rewritten.

Workers answer in parallel, so responses leave out of order: librdkafka matches them by
correlation id. A broker appends pipelined produce requests in the order they were sent;
here workers would append them in the order they finish, so requests are sequenced by
correlation id (librdkafka numbers them 1, 2, 3... per connection; common.Sequencer).
"""
import struct
import threading
import time

from .common import Corrupt, Reader, Result, Sequencer, encode_uvarint, uvarint

FRAMING = "u32be+4"

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS = 0, 1, 2, 3, 18
SUPPORTED = {PRODUCE: (3, 7), FETCH: (4, 11), LIST_OFFSETS: (1, 5), METADATA: (1, 8),
             API_VERSIONS: (0, 3)}
NAMES = {PRODUCE: "produce", FETCH: "fetch", LIST_OFFSETS: "list_offsets",
         METADATA: "metadata", API_VERSIONS: "api_versions"}
NONE, OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, UNKNOWN_TOPIC, UNSUPPORTED_VERSION = 0, 1, 2, 3, 35
CLUSTER_ID = "kcm-bpf-test"
FETCH_IDLE_S = 0.05	# an empty fetch waits this long (a broker holds it up to max_wait)


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(r, what="varint"):
    """Zigzag varint (records), up to 64 bits."""
    n = uvarint(r, what, 10)
    return (n >> 1) ^ -(n & 1)


def string(r, what="string", nullable=False):
    n = r.i16(what)
    if n < 0:
        if not nullable:
            raise Corrupt(f"{what} is null")
        return None
    return r.take(n, what).decode("utf-8", "replace")


def compact_string(r, what="string"):
    n = uvarint(r, what) - 1
    return None if n < 0 else r.take(n, what).decode("utf-8", "replace")


def tagged_fields(r):
    for _ in range(uvarint(r, "tagged fields")):
        uvarint(r, "tag")
        r.take(uvarint(r, "tag size"), "tagged field")


def array(r, what, item):
    n = r.i32(what)
    if n < -1 or n > r.left():
        raise Corrupt(f"{what} of {n} items")
    return [item() for _ in range(max(n, 0))] if n >= 0 else None


def enc_string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def enc_array(items):
    return struct.pack(">i", len(items)) + b"".join(items)


def parse_batches(data):
    """Check the record batches of a produce request; returns [(batch bytes, values)]."""
    r = Reader(data)
    out = []
    while r.left():
        start = r.pos
        r.i64("base offset")
        blen = r.i32("batch length")
        if blen < 49 or blen > r.left():
            raise Corrupt(f"record batch length {blen} ({r.left()} bytes left)")
        end = r.pos + blen
        r.i32("partition leader epoch")
        magic = r.u8("magic")
        if magic != 2:
            raise Corrupt(f"record batch magic {magic}")
        crc = r.unpack(">I", "crc")[0]
        if crc32c(data[r.pos:end]) != crc:
            raise Corrupt("record batch CRC-32C mismatch")
        attrs = r.i16("attributes")
        last_delta = r.i32("last offset delta")
        r.take(8 + 8 + 8 + 2 + 4, "batch header")
        count = r.i32("record count")
        values = []
        if attrs & 7:		# compressed: the CRC vouches for the bytes
            r.pos = end
        else:
            br = Reader(data, r.pos, end)
            for _ in range(count):
                rlen = varint(br, "record length")
                rec = Reader(data, br.pos, br.pos + rlen)
                br.take(rlen, "record")
                rec.u8("record attributes")
                varint(rec, "timestamp delta")
                varint(rec, "offset delta")
                klen = varint(rec, "key length")
                if klen > 0:
                    rec.take(klen, "key")
                vlen = varint(rec, "value length")
                values.append(bytes(rec.take(vlen, "value")) if vlen >= 0 else None)
                for _ in range(varint(rec, "header count")):
                    rec.take(varint(rec, "header key length"), "header key")
                    hv = varint(rec, "header value length")
                    if hv > 0:
                        rec.take(hv, "header value")
                rec.done("record")
            br.done("record batch")
            r.pos = end
        if last_delta != count - 1:
            raise Corrupt(f"last offset delta {last_delta} for {count} records")
        out.append((data[start:end], count, values))
    return out


class Log:
    """One partition: batches as produced, each with its first offset."""

    def __init__(self):
        self.batches = []	# (base offset, bytes)
        self.next = 0

    def append(self, batch, count):
        base = self.next
        self.batches.append((base, struct.pack(">q", base) + batch[8:]))
        self.next += count
        return base

    def read(self, offset, max_bytes):
        out = b""
        for base, b in self.batches:
            last = base + struct.unpack(">i", b[23:27])[0]
            if last < offset:
                continue
            if out and len(out) + len(b) > max_bytes:
                break
            out += b
        return out


class Server:
    def __init__(self, args):
        host, port = args.listen.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.lock = threading.Lock()
        self.logs = {}		# topic -> Log (partition 0)
        self.values = set()
        self.records = 0
        self.conns = []

    def new_conn(self, cid):
        seq = Sequencer()
        self.conns.append(seq)
        return seq

    def log(self, topic):
        with self.lock:
            return self.logs.setdefault(topic, Log())

    def handle(self, seq, msg, ctx):
        r = Reader(msg)
        if r.i32("size") != len(msg) - 4:
            raise Corrupt("size disagrees with the message size")
        api, ver, corr = r.unpack(">hhi", "request header")
        string(r, "client id", nullable=True)
        if api == API_VERSIONS and ver >= 3:
            tagged_fields(r)	# request header v2
        kind = NAMES.get(api, f"api{api}")
        lo, hi = SUPPORTED.get(api, (0, -1))
        if not lo <= ver <= hi:
            seq.step(corr)
            if api != API_VERSIONS:
                raise Corrupt(f"{kind} v{ver} was never advertised")
            r.take(r.left())	# answer in v0, as KIP-511 asks
            body = self.api_versions(0, UNSUPPORTED_VERSION)
        elif api == PRODUCE:
            try:	# parse and check in parallel, append in order
                append = self.produce(r, ver)
                r.done(f"{kind} v{ver}")
            except Corrupt:
                seq.step(corr)	# do not hold up the requests after it
                raise
            body = seq.step(corr, append)
        else:
            seq.step(corr)
            body = {FETCH: self.fetch, LIST_OFFSETS: self.list_offsets, METADATA: self.metadata,
                    API_VERSIONS: self.api_versions_request}[api](r, ver)
        r.done(f"{kind} v{ver}")
        if body is not None:
            resp = struct.pack(">i", corr) + body
            ctx.send(struct.pack(">i", len(resp)) + resp)
        return Result(kind, [("corr", corr)])

    def api_versions(self, ver, error=NONE):
        if ver >= 3:
            body = struct.pack(">h", error) + encode_uvarint(len(SUPPORTED) + 1)
            body += b"".join(struct.pack(">hhh", k, lo, hi) + b"\x00"
                             for k, (lo, hi) in sorted(SUPPORTED.items()))
            return body + struct.pack(">i", 0) + b"\x00"
        body = struct.pack(">h", error) + enc_array(
            [struct.pack(">hhh", k, lo, hi) for k, (lo, hi) in sorted(SUPPORTED.items())])
        return body + (struct.pack(">i", 0) if ver >= 1 else b"")

    def api_versions_request(self, r, ver):
        if ver >= 3:
            compact_string(r, "client software name")
            compact_string(r, "client software version")
            tagged_fields(r)
        return self.api_versions(ver)

    def metadata(self, r, ver):
        topics = array(r, "topics", lambda: string(r, "topic"))
        if ver >= 4:
            r.u8("allow auto topic creation")
        if ver >= 8:
            r.take(2, "include authorized operations")
        if topics is None or not topics:
            with self.lock:
                topics = sorted(self.logs)
        body = struct.pack(">i", 0) if ver >= 3 else b""
        body += enc_array([struct.pack(">i", 0) + enc_string(self.host) +
                           struct.pack(">i", self.port) + enc_string(None)])
        if ver >= 2:
            body += enc_string(CLUSTER_ID)
        body += struct.pack(">i", 0)	# controller
        tl = []
        for t in topics:
            self.log(t)
            p = struct.pack(">hii", NONE, 0, 0)
            if ver >= 7:
                p += struct.pack(">i", 0)
            p += enc_array([struct.pack(">i", 0)]) + enc_array([struct.pack(">i", 0)])
            if ver >= 5:
                p += enc_array([])
            t = struct.pack(">h", NONE) + enc_string(t) + b"\x00" + enc_array([p])
            if ver >= 8:
                t += struct.pack(">i", -2147483648)
            tl.append(t)
        body += enc_array(tl)
        if ver >= 8:
            body += struct.pack(">i", -2147483648)
        return body

    def produce(self, r, ver):
        string(r, "transactional id", nullable=True)
        acks = r.i16("acks")
        r.i32("timeout")
        topics = []
        for _ in range(r.i32("topics")):
            name = string(r, "topic")
            parts = []
            for _ in range(r.i32("partitions")):
                index = r.i32("partition")
                n = r.i32("records size")
                data = r.take(n, "records") if n > 0 else b""
                parts.append((index, parse_batches(data)))
            topics.append((name, parts))

        def append():
            out = []
            for name, parts in topics:
                pl = []
                for index, batches in parts:
                    err, base = UNKNOWN_TOPIC, -1
                    if index == 0:
                        err, log = NONE, self.log(name)
                        with self.lock:
                            for batch, count, values in batches:
                                b = log.append(batch, count)
                                base = b if base < 0 else base
                                self.records += count
                                self.values.update(values)
                    pl.append(struct.pack(">ihqq", index, err, base, -1) +
                              (struct.pack(">q", 0) if ver >= 5 else b""))
                out.append(enc_string(name) + enc_array(pl))
            return enc_array(out) + struct.pack(">i", 0) if acks else None
        return append

    def list_offsets(self, r, ver):
        r.i32("replica id")
        if ver >= 2:
            r.u8("isolation level")
        out = []
        for _ in range(r.i32("topics")):
            name = string(r, "topic")
            pl = []
            for _ in range(r.i32("partitions")):
                index = r.i32("partition")
                if ver >= 4:
                    r.i32("current leader epoch")
                ts = r.i64("timestamp")
                with self.lock:
                    hw = self.logs[name].next if name in self.logs else 0
                err = NONE if index == 0 else UNKNOWN_TOPIC
                offset = 0 if ts == -2 else hw
                p = struct.pack(">ihqq", index, err, -1, offset)
                if ver >= 4:
                    p += struct.pack(">i", 0)
                pl.append(p)
            out.append(enc_string(name) + enc_array(pl))
        return (struct.pack(">i", 0) if ver >= 2 else b"") + enc_array(out)

    def fetch(self, r, ver):
        r.i32("replica id")
        max_wait = r.i32("max wait")
        r.i32("min bytes")
        r.i32("max bytes")
        r.u8("isolation level")
        if ver >= 7:
            r.take(8, "session")
        wanted = []
        for _ in range(r.i32("topics")):
            name = string(r, "topic")
            for _ in range(r.i32("partitions")):
                index = r.i32("partition")
                if ver >= 9:
                    r.i32("current leader epoch")
                offset = r.i64("fetch offset")
                if ver >= 5:
                    r.i64("log start offset")
                wanted.append((name, index, offset, r.i32("partition max bytes")))
        if ver >= 7:
            for _ in range(r.i32("forgotten topics")):
                string(r, "topic")
                r.take(4 * r.i32("partitions"), "partitions")
        if ver >= 11:
            string(r, "rack id")
        got = []
        for name, index, offset, max_bytes in wanted:
            with self.lock:
                log = self.logs.get(name)
                hw = log.next if log else 0
                data = log.read(offset, max_bytes) if log and index == 0 else b""
            err = NONE if index == 0 and log and offset <= hw else OFFSET_OUT_OF_RANGE
            got.append((name, index, err, hw, data))
        if not any(g[4] for g in got):
            time.sleep(min(max_wait / 1000, FETCH_IDLE_S))
        body = struct.pack(">i", 0)
        if ver >= 7:
            body += struct.pack(">hi", NONE, 0)
        topics = {}
        for name, index, err, hw, data in got:
            p = struct.pack(">ihqq", index, err, hw, hw)
            if ver >= 5:
                p += struct.pack(">q", 0)
            p += struct.pack(">i", -1)	# no aborted transactions
            if ver >= 11:
                p += struct.pack(">i", -1)
            p += struct.pack(">i", len(data)) + data
            topics.setdefault(name, []).append(p)
        return body + enc_array([enc_string(n) + enc_array(p) for n, p in topics.items()])

    def summary(self):
        with self.lock:
            return {"records": self.records, "distinct_values": len(self.values),
                    "order_timeouts": sum(s.timeouts for s in self.conns),
                    "topics": {t: log.next for t, log in self.logs.items()}}
