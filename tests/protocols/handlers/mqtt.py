# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
MQTT 3.1, 3.1.1 and 5.0 control packets (fixed header + remaining-length varint): a
broker that acknowledges everything and delivers nothing. CONNECT -> CONNACK, PUBLISH
QoS 1 -> PUBACK, QoS 2 -> PUBREC, PUBREL -> PUBCOMP, SUBSCRIBE -> SUBACK, UNSUBSCRIBE ->
UNSUBACK, PINGREQ -> PINGRESP. The protocol level comes from CONNECT, which a client
sends alone and first (it waits for CONNACK), so later packets parse with the right one.

MQTT wants PUBACK and PUBREC in the order of the PUBLISH packets, and clients rely on it
(mosquitto_pub -l disconnects once the last message is acknowledged). Workers run in
parallel, so acknowledgements are sequenced (common.Sequencer): the one for packet id N
leaves after the one for N-1.
"""
import struct
import threading

from .common import Corrupt, Reader, Result, Sequencer, encode_uvarint, uvarint

FRAMING = None  # the remaining length is a varint: needs the mqtt parser

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, \
    UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(1, 16)
NAMES = {CONNECT: "connect", PUBLISH: "publish", PUBACK: "puback", PUBREC: "pubrec",
         PUBREL: "pubrel", PUBCOMP: "pubcomp", SUBSCRIBE: "subscribe",
         UNSUBSCRIBE: "unsubscribe", PINGREQ: "pingreq", DISCONNECT: "disconnect",
         AUTH: "auth"}
# packets whose fixed-header flags are fixed (MQTT 3.1.1 table 2.2)
FIXED_FLAGS = {CONNECT: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2,
               UNSUBSCRIBE: 2, PINGREQ: 0, DISCONNECT: 0, AUTH: 0}


def varint(r):
    return uvarint(r, "varint", 4)


def mqtt_string(r, what="string"):
    return r.take(r.u16(what), what)


def properties(r, v5):
    if v5:
        r.take(varint(r), "properties")


def packet(ptype, flags, body):
    return bytes((ptype << 4 | flags,)) + encode_uvarint(len(body)) + body


class ConnState:
    def __init__(self):
        self.level = None		# 3, 4 or 5, from CONNECT
        self.acks = Sequencer()		# PUBACK, PUBREC
        self.comps = Sequencer()	# PUBCOMP


class Server:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.payloads = set()
        self.conns = []

    def new_conn(self, cid):
        st = ConnState()
        self.conns.append(st)
        return st

    def handle(self, st, msg, ctx):
        r = Reader(msg)
        b0 = r.u8("fixed header")
        ptype, flags = b0 >> 4, b0 & 0xF
        if varint(r) != r.left():
            raise Corrupt(f"remaining length disagrees with the message size {len(msg)}")
        if ptype in FIXED_FLAGS and flags != FIXED_FLAGS[ptype]:
            raise Corrupt(f"packet type {ptype} with flags {flags:#x}")
        if ptype not in NAMES:
            raise Corrupt(f"packet type {ptype} is not sent by clients")
        v5 = st.level == 5
        kind, ids = NAMES[ptype], []
        if ptype == CONNECT:
            name = mqtt_string(r, "protocol name")
            level = r.u8("protocol level")
            if (name, level) not in ((b"MQIsdp", 3), (b"MQTT", 4), (b"MQTT", 5)):
                raise Corrupt(f"protocol {name!r} level {level}")
            cflags = r.u8("connect flags")
            r.u16("keep alive")
            st.level = level
            v5 = level == 5
            properties(r, v5)
            mqtt_string(r, "client id")
            if cflags & 0x04:	# will
                properties(r, v5)
                mqtt_string(r, "will topic")
                mqtt_string(r, "will message")
            if cflags & 0x80:
                mqtt_string(r, "user name")
            if cflags & 0x40:
                mqtt_string(r, "password")
            r.done("CONNECT")
            ctx.send(packet(CONNACK, 0, b"\x00\x00\x00" if v5 else b"\x00\x00"))
            ids.append(("connect",))
        elif ptype == PUBLISH:
            qos = flags >> 1 & 3
            if qos == 3:
                raise Corrupt("PUBLISH with QoS 3")
            topic = mqtt_string(r, "topic")
            pid = r.u16("packet id") if qos else None
            properties(r, v5)
            payload = r.take(r.left())
            with self.lock:
                self.payloads.add(payload)
            ids.append(("publish", pid, topic, payload))
            kind = f"publish_qos{qos}"
            if qos:
                ack = packet(PUBACK if qos == 1 else PUBREC, 0, struct.pack(">H", pid))
                st.acks.step(pid, lambda: ctx.send(ack))
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            pid = r.u16("packet id")
            if v5 and r.left():
                r.u8("reason code")
                if r.left():
                    properties(r, v5)
            r.done(kind)
            ids.append((kind, pid))
            if ptype == PUBREL:
                comp = packet(PUBCOMP, 0, struct.pack(">H", pid))
                st.comps.step(pid, lambda: ctx.send(comp))
            elif ptype == PUBREC:	# an answer to a QoS 2 PUBLISH we never send
                ctx.send(packet(PUBREL, 2, struct.pack(">H", pid)))
        elif ptype in (SUBSCRIBE, UNSUBSCRIBE):
            pid = r.u16("packet id")
            properties(r, v5)
            granted = bytearray()
            while r.left():
                mqtt_string(r, "topic filter")
                if ptype == SUBSCRIBE:
                    granted.append(min(r.u8("options") & 3, 2))
                else:
                    granted.append(0)
            if not granted:
                raise Corrupt(f"{kind} without topics")
            ids.append((kind, pid))
            if ptype == SUBSCRIBE:
                ctx.send(packet(SUBACK, 0, struct.pack(">H", pid) + (b"\x00" if v5 else b"")
                                + bytes(granted)))
            else:
                ctx.send(packet(UNSUBACK, 0, struct.pack(">H", pid) +
                                (b"\x00" + bytes(len(granted)) if v5 else b"")))
        elif ptype == PINGREQ:
            r.done(kind)
            ctx.send(packet(PINGRESP, 0, b""))
        else:	# DISCONNECT, AUTH: reason code and properties (5.0) or nothing
            r.take(r.left())
        return Result(kind, ids)

    def summary(self):
        return {"distinct_payloads": len(self.payloads),
                "order_timeouts": sum(c.acks.timeouts + c.comps.timeouts for c in self.conns)}
