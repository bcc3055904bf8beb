# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""What every protocol handler shares: a strict reader and the corrupt-message error."""
import struct
import threading


class Corrupt(Exception):
    """The message is not one whole, well-formed message of the protocol."""


class Reader:
    """Reads a message front to back; every read past the end is a Corrupt message."""

    def __init__(self, data, pos=0, end=None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def left(self):
        return self.end - self.pos

    def take(self, n, what="field"):
        if n < 0 or n > self.left():
            raise Corrupt(f"{what} of {n} bytes at offset {self.pos} runs past the end "
                          f"({self.left()} left)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt, what="field"):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def u8(self, what="u8"):
        return self.take(1, what)[0]

    def u16(self, what="u16"):
        return self.unpack(">H", what)[0]

    def u32(self, what="u32"):
        return self.unpack(">I", what)[0]

    def i16(self, what="i16"):
        return self.unpack(">h", what)[0]

    def i32(self, what="i32"):
        return self.unpack(">i", what)[0]

    def i64(self, what="i64"):
        return self.unpack(">q", what)[0]

    def done(self, what="message"):
        if self.pos != self.end:
            raise Corrupt(f"{what} has {self.end - self.pos} bytes left over at offset {self.pos}")


class Result:
    """What a handler reports about one message: its kind and the ids that name it."""

    def __init__(self, kind, ids=()):
        self.kind = kind
        self.ids = list(ids)


class Sequencer:
    """Run steps in the order of their sequence numbers, whichever worker has them.

    A client that numbers its requests 1, 2, 3... on a connection (MQTT packet ids, Kafka
    correlation ids) may need effects or replies in that order, which parallel workers do
    not give. step(n, fn) runs fn once step n - 1 has run; a gap is waited out for @wait_s
    and counted in `timeouts`. Each worker's queue is in stream order, so the lowest
    pending number is always at the head of some queue: waiting cannot deadlock.
    """

    def __init__(self, wait_s=2.0, first=1):
        self.cond = threading.Condition()
        self.done = set()
        self.first = first
        self.wait_s = wait_s
        self.timeouts = 0

    def step(self, n, fn=None):
        prev = n - 1
        with self.cond:
            if n > self.first and prev not in self.done:
                if not self.cond.wait_for(lambda: prev in self.done, self.wait_s):
                    self.timeouts += 1
            result = fn() if fn else None
            self.done.add(n)
            self.done.discard(n - 1024)
            self.cond.notify_all()
        return result


def uvarint(r, what="varint", max_bytes=5):
    """Little-endian base-128 unsigned integer (Kafka, protobuf, MQTT's remaining length)."""
    n = 0
    for i in range(max_bytes):
        b = r.u8(what)
        n |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return n
    raise Corrupt(f"{what} longer than {max_bytes} bytes")


def encode_uvarint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
