# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Thrift framed transport: the Calc service (thrift/calc.thrift) through its generated
Processor, one frame in, one frame out. Needs --thrift-gen, the `thrift --gen py` output."""
import struct
import sys

from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TMessageType
from thrift.transport import TTransport

from .common import Corrupt, Result

FRAMING = "u32be+4"


class CalcHandler:
    def add(self, a, b):
        return (a + b + 2**31) % 2**32 - 2**31

    def echo(self, text):
        return text

    def sum(self, values):
        if not values:
            raise self.errors.CalcError(why="sum of nothing")
        return sum(values)

    def note(self, seq):
        pass


class Server:
    def __init__(self, args):
        if not args.thrift_gen:
            raise SystemExit("kcm_proto_server: thrift needs --thrift-gen DIR "
                             "(thrift --gen py -out DIR tests/protocols/thrift/calc.thrift)")
        sys.path.insert(0, args.thrift_gen)
        from kcmtest import Calc, ttypes  # the generated code

        handler = CalcHandler()
        handler.errors = ttypes
        self.processor = Calc.Processor(handler)

    def new_conn(self, cid):
        return None

    def handle(self, state, msg, ctx):
        if len(msg) < 4 or struct.unpack(">I", msg[:4])[0] != len(msg) - 4:
            raise Corrupt("frame length disagrees with the message size")
        payload = msg[4:]
        try:
            peek = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(payload))
            name, mtype, seqid = peek.readMessageBegin()
        except Exception as e:
            raise Corrupt(f"bad message header: {e!r}")
        if mtype not in (TMessageType.CALL, TMessageType.ONEWAY):
            raise Corrupt(f"message type {mtype} is not a call")
        itrans = TTransport.TMemoryBuffer(payload)
        otrans = TTransport.TMemoryBuffer()
        try:
            self.processor.process(TBinaryProtocol.TBinaryProtocol(itrans),
                                   TBinaryProtocol.TBinaryProtocol(otrans))
        except Exception as e:
            raise Corrupt(f"{name}: cannot read the arguments: {e!r}")
        if itrans._buffer.tell() != len(payload):
            raise Corrupt(f"{name}: {len(payload) - itrans._buffer.tell()} bytes after the call")
        out = otrans.getvalue()
        if mtype == TMessageType.CALL:
            if not out:
                raise Corrupt(f"{name}: the processor wrote no reply")
            ctx.send(struct.pack(">I", len(out)) + out)
        return Result(name, [(name, seqid)])

    def summary(self):
        return {}
