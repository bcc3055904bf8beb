# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
HTTP/2 (RFC 9113) with prior knowledge: the 24-byte client preface is a message of its
own, then every frame is one.

Workers encode independently, so responses use HPACK without the dynamic table (indexed
static entries and literals without indexing). Request header blocks are walked for
structure but not decoded: the client's dynamic table lives in frame order, which the
workers do not share. A stream is answered (HEADERS + DATA with END_STREAM, in one
kcm_send so they stay in order) by whichever worker completes it: END_STREAM seen after
END_HEADERS. Nothing leaves before the server's SETTINGS, which must be the first frame.
"""
import struct
import threading

from .common import Corrupt, Reader, Result

FRAMING = None  # the preface is not a frame: needs the http2 parser
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
NAMES = ["data", "headers", "priority", "rst_stream", "settings", "push_promise", "ping",
         "goaway", "window_update", "continuation"]
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload


def hpack_int(block, i, prefix):
    mask = (1 << prefix) - 1
    if i >= len(block):
        raise Corrupt("header block ends inside an integer")
    v = block[i] & mask
    i += 1
    if v < mask:
        return v, i
    shift = 0
    while True:
        if i >= len(block) or shift > 28:
            raise Corrupt("header block ends inside an integer")
        b = block[i]
        i += 1
        v += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def hpack_string(block, i):
    n, i = hpack_int(block, i, 7)
    if i + n > len(block):
        raise Corrupt(f"header string of {n} bytes runs past the block")
    return i + n


def hpack_walk(block):
    """Count the header fields of a block; Corrupt unless it ends exactly at a field end."""
    i = fields = 0
    while i < len(block):
        b = block[i]
        if b & 0x80:		# indexed field
            idx, i = hpack_int(block, i, 7)
            if idx == 0:
                raise Corrupt("indexed header field with index 0")
            fields += 1
        elif b & 0xC0 == 0x40:	# literal with incremental indexing
            idx, i = hpack_int(block, i, 6)
            if idx == 0:
                i = hpack_string(block, i)
            i = hpack_string(block, i)
            fields += 1
        elif b & 0xE0 == 0x20:	# dynamic table size update
            _, i = hpack_int(block, i, 5)
        else:			# literal without indexing / never indexed
            idx, i = hpack_int(block, i, 4)
            if idx == 0:
                i = hpack_string(block, i)
            i = hpack_string(block, i)
            fields += 1
    return fields


def literal(index, value):
    """Literal header field without indexing, name from static table @index (> 15)."""
    v = value.encode()
    return bytes((0x0F, index - 15, len(v))) + v


class ConnState:
    def __init__(self):
        self.lock = threading.Lock()
        self.settings_sent = threading.Event()
        self.streams = {}	# sid -> {"headers": bool, "end": bool, "done": bool, "data": int}
        self.responses = 0


class Server:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.responses = 0
        self.data_bytes = 0

    def new_conn(self, cid):
        return ConnState()

    def send(self, st, ctx, data):
        # The server's SETTINGS is the first frame of the connection (RFC 9113 3.4).
        if not st.settings_sent.wait(5):
            raise Corrupt("no preface before this frame")
        ctx.send(data)

    def stream_event(self, st, ctx, sid, headers=False, end=False, data=0):
        with st.lock:
            s = st.streams.setdefault(sid, {"headers": False, "end": False, "done": False,
                                            "data": 0})
            s["headers"] |= headers
            s["end"] |= end
            s["data"] += data
            answer = s["headers"] and s["end"] and not s["done"]
            if answer:
                s["done"] = True
        if not answer:
            return
        body = f"kcm-bpf http2 stream {sid}\n".encode()
        block = b"\x88" + literal(28, str(len(body))) + literal(31, "text/plain")
        self.send(st, ctx, frame(HEADERS, END_HEADERS, sid, block) +
                  frame(DATA, END_STREAM, sid, body))
        with self.lock:
            self.responses += 1

    def handle(self, st, msg, ctx):
        if msg[:3] == PREFACE[:3] and len(msg) == len(PREFACE):
            if msg != PREFACE:
                raise Corrupt("bad connection preface")
            ctx.send(frame(SETTINGS, 0, 0, struct.pack(">HIHI",
                     SETTINGS_MAX_CONCURRENT_STREAMS, 1000,
                     SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)))
            st.settings_sent.set()
            return Result("preface", [("preface",)])
        r = Reader(msg)
        length = r.u32() >> 8
        r.pos = 3
        ftype, flags, sid = r.unpack(">BBI", "frame header")
        sid &= 0x7FFFFFFF
        if length != len(msg) - 9:
            raise Corrupt(f"frame length {length} disagrees with the message size {len(msg)}")
        kind = NAMES[ftype] if ftype < len(NAMES) else f"type{ftype}"
        ids = []
        if ftype in (DATA, HEADERS) and flags & PADDED:
            pad = r.u8("pad length")
            if pad > r.left():
                raise Corrupt("padding longer than the frame")
            r.end -= pad
        if ftype == DATA:
            if not sid:
                raise Corrupt("DATA on stream 0")
            n = r.left()
            r.take(n)
            if length:	# give back the flow-control window the frame used
                wu = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", length))
                if not flags & END_STREAM:
                    wu += frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", length))
                self.send(st, ctx, wu)
            with self.lock:
                self.data_bytes += n
            self.stream_event(st, ctx, sid, end=bool(flags & END_STREAM), data=n)
        elif ftype in (HEADERS, CONTINUATION):
            if not sid or not sid & 1:
                raise Corrupt(f"request headers on stream {sid}")
            if ftype == HEADERS and flags & PRIO:
                r.take(5, "priority")
            hpack_walk(r.take(r.left()))
            if ftype == HEADERS:
                ids.append(("headers", sid))
            self.stream_event(st, ctx, sid, headers=bool(flags & END_HEADERS),
                              end=bool(flags & END_STREAM) if ftype == HEADERS else False)
        elif ftype == SETTINGS:
            if sid or (flags & ACK and length) or length % 6:
                raise Corrupt(f"bad SETTINGS frame (length {length}, stream {sid})")
            r.take(length)
            if flags & ACK:
                kind = "settings_ack"
            else:
                self.send(st, ctx, frame(SETTINGS, ACK, 0))
        elif ftype == PING:
            if length != 8 or sid:
                raise Corrupt("bad PING frame")
            data = r.take(8)
            if flags & ACK:
                kind = "ping_ack"
            else:
                self.send(st, ctx, frame(PING, ACK, 0, data))
        elif ftype == WINDOW_UPDATE:
            if length != 4:
                raise Corrupt("bad WINDOW_UPDATE frame")
            r.take(4)
        elif ftype == PRIORITY:
            if length != 5:
                raise Corrupt("bad PRIORITY frame")
            r.take(5)
        elif ftype == RST_STREAM:
            if length != 4:
                raise Corrupt("bad RST_STREAM frame")
            r.take(4)
        elif ftype == GOAWAY:
            if length < 8:
                raise Corrupt("bad GOAWAY frame")
            r.take(length)
        else:
            r.take(r.left())	# unknown and extension frames are ignored
        r.done(f"{kind} frame")
        return Result(kind, ids)

    def summary(self):
        return {"responses": self.responses, "data_bytes": self.data_bytes}
