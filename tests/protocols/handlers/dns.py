# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""DNS over TCP (RFC 7766): every A query gets one answer whose address the name decides.

A name whose first label is q<N> resolves to 10.(N>>16).(N>>8).(N) (each & 255), any other
name to 192.0.2.1, so a client can check each answer against the name it asked for.
"""
import struct

from .common import Corrupt, Reader, Result

FRAMING = "u16be+2"
TYPE_A = 1
TYPE_OPT = 41
CLASS_IN = 1
TTL = 60


def address(qname):
    label = qname.split(".", 1)[0].lower()
    if label[:1] == "q" and label[1:].isdigit():
        n = int(label[1:])
        return bytes((10, n >> 16 & 255, n >> 8 & 255, n & 255))
    return bytes((192, 0, 2, 1))


def read_name(r):
    """A domain name at the reader's position (following compression pointers)."""
    labels, pos, jumped, hops = [], r.pos, False, 0
    data = r.data
    while True:
        if pos >= r.end:
            raise Corrupt(f"name runs past the end at offset {pos}")
        n = data[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= r.end:
                raise Corrupt("compression pointer cut short")
            target = 2 + ((n & 0x3F) << 8 | data[pos + 1])  # offsets count from the DNS header
            if not jumped:
                r.pos = pos + 2
            jumped, hops = True, hops + 1
            if hops > 32 or target >= pos:
                raise Corrupt("compression pointer loop")
            pos = target
            continue
        if n & 0xC0:
            raise Corrupt(f"bad label type {n:#x}")
        if n == 0:
            if not jumped:
                r.pos = pos + 1
            return ".".join(labels) + "."
        if pos + 1 + n > r.end:
            raise Corrupt("label runs past the end")
        labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n


class Server:
    def __init__(self, args):
        pass

    def new_conn(self, cid):
        return None

    def handle(self, state, msg, ctx):
        r = Reader(msg)
        if r.u16("length") != len(msg) - 2:
            raise Corrupt("length prefix disagrees with the message size")
        qid, flags, qd, an, ns, ar = r.unpack(">6H", "header")
        if flags & 0x8000:
            raise Corrupt("a response, not a query")
        questions = []
        for _ in range(qd):
            name = read_name(r)
            qtype, qclass = r.unpack(">HH", "question")
            questions.append((name, qtype, qclass))
        for _ in range(an + ns + ar):
            read_name(r)
            _, _, _, rdlen = r.unpack(">HHIH", "record")
            r.take(rdlen, "rdata")
        r.done("DNS query")

        opcode = flags >> 11 & 0xF
        rcode = 0 if opcode == 0 else 4  # NOTIMP
        answers = b""
        nans = 0
        if rcode == 0 and len(questions) == 1:
            name, qtype, qclass = questions[0]
            if qtype == TYPE_A and qclass == CLASS_IN:
                answers = struct.pack(">HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + address(name)
                nans = 1
        rflags = 0x8000 | opcode << 11 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        body = struct.pack(">6H", qid, rflags, len(questions), nans, 0, 0)
        body += msg[14:14 + question_bytes(msg, len(questions))] + answers
        ctx.send(struct.pack(">H", len(body)) + body)
        return Result("query", [(qid, q[0].lower(), q[1]) for q in questions])

    def summary(self):
        return {}


def question_bytes(msg, qd):
    """Bytes of the question section (copied verbatim into the answer)."""
    r = Reader(msg, 14)
    for _ in range(qd):
        read_name(r)
        r.take(4)
    return r.pos - 14
