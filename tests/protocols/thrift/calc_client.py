#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
Drive the Calc service with python3-thrift's generated client over TFramedTransport.

Each of --conns connections (one thread each) makes --calls synchronous calls in turn
(add, echo with bodies up to --max-echo bytes, sum, sum of nothing that must raise
CalcError) and checks every answer, then sends --notes oneway calls back to back. The
seqid of each call is its global number, so the server can tell calls apart (the
generated client leaves it at 0). Prints one JSON line: calls, ok, wrong, errors.
"""
import argparse
import json
import random
import sys
import threading


def run_conn(args, conn, Calc, ttypes, out):
    from thrift.protocol import TBinaryProtocol
    from thrift.transport import TSocket, TTransport

    host, port = args.connect.rsplit(":", 1)
    sock = TSocket.TSocket(host, int(port))
    sock.setTimeout(args.timeout * 1000)
    trans = TTransport.TFramedTransport(sock)
    client = Calc.Client(TBinaryProtocol.TBinaryProtocol(trans))
    rnd = random.Random(args.seed * 1000 + conn)
    st = {"calls": 0, "ok": 0, "wrong": 0, "notes": 0, "errors": []}
    base = conn * (args.calls + args.notes)
    try:
        trans.open()
        for i in range(args.calls):
            client._seqid = base + i
            st["calls"] += 1
            k = rnd.randrange(4)
            if k == 0:
                a, b = rnd.randrange(-2**30, 2**30), rnd.randrange(-2**30, 2**30)
                good = client.add(a, b) == a + b
            elif k == 1:
                n = int(args.max_echo ** rnd.random())
                text = f"{conn}:{i}:" + "".join(rnd.choice("abcdefgh") for _ in range(n))
                good = client.echo(text) == text
            elif k == 2:
                values = [rnd.randrange(-2**40, 2**40) for _ in range(rnd.randrange(1, 50))]
                good = client.sum(values) == sum(values)
            else:
                try:
                    client.sum([])
                    good = False
                except ttypes.CalcError as e:
                    good = e.why == "sum of nothing"
            st["ok" if good else "wrong"] += 1
        for i in range(args.notes):
            client._seqid = base + args.calls + i
            client.note(i)
            st["notes"] += 1
    except Exception as e:
        st["errors"].append(f"conn {conn}: {e!r}")
    finally:
        trans.close()
    out[conn] = st


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("--connect", required=True, metavar="IP:PORT")
    ap.add_argument("--gen", required=True, help="thrift --gen py output directory")
    ap.add_argument("--conns", type=int, default=1)
    ap.add_argument("--calls", type=int, default=100, help="synchronous calls per connection")
    ap.add_argument("--notes", type=int, default=0, help="oneway calls per connection")
    ap.add_argument("--max-echo", type=int, default=100000, help="largest echo body")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10, help="seconds to wait for a reply")
    args = ap.parse_args()
    sys.dont_write_bytecode = True
    sys.path.insert(0, args.gen)
    from kcmtest import Calc, ttypes

    out = [None] * args.conns
    threads = [threading.Thread(target=run_conn, args=(args, c, Calc, ttypes, out))
               for c in range(args.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = {k: sum(s[k] for s in out) for k in ("calls", "ok", "wrong", "notes")}
    total["errors"] = [e for s in out for e in s["errors"]]
    print(json.dumps(total))
    return 0 if not total["wrong"] and not total["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
