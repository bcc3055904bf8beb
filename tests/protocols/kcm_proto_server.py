#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""
A protocol server whose handlers run behind KCM sockets.

Each accepted TCP connection gets its own mux (kcm_send replies leave on any transport of
a mux, so a mux never holds two clients) with --workers KCM sockets, one thread each. A
worker reads one whole message per kcm_recv(), parses it completely with the protocol's
handler (a message that does not parse exactly to its end counts as corrupt), records it
under its request ids, and sends the handler's replies with kcm_send().

At exit (SIGTERM/SIGINT, --conns connections done, or --timeout) it writes a JSON summary:
per-worker message counts, corrupt and truncated messages, unique and duplicate request
ids. Exit status: 0, 1 on a runtime failure or timeout, 2 on a usage error.
"""
import argparse
import errno
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections import Counter

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kcm  # noqa: E402
from handlers.common import Corrupt  # noqa: E402

PROTOCOLS = ("dns", "http2", "kafka", "memcached", "mqtt", "thrift")
# What strparser posts on a transport whose stream it cannot frame; a client's reset or a
# reply written after its close (EPIPE, ECONNRESET) is not the data plane's failure.
PARSE_ERRORS = (errno.EMSGSIZE, errno.EBADMSG, errno.ETIMEDOUT, errno.EIO, errno.ENOMEM)
PARSE_NAMES = [errno.errorcode[e] for e in PARSE_ERRORS]
QUIET_S = 0.3		# a closed connection is drained once its workers saw nothing this long
POLL_MS = 100
MAX_ERRORS = 20


class Stats:
    """The counters the summary reports, under one lock that workers share."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kinds = Counter()
        self.corrupt = 0
        self.truncated = 0
        self.replies = 0
        self.send_errors = 0
        self.handler_errors = 0
        self.errors = []

    def error(self, text):
        with self.lock:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(text)
        print(f"kcm_proto_server: {text}", file=sys.stderr)


class Ctx:
    """What a handler sees of the worker that runs it."""

    def __init__(self, conn, worker):
        self.conn = conn
        self.worker = worker

    def send(self, data):
        conn = self.conn
        try:
            conn.lib.send(conn.fds[self.worker], data)
        except kcm.KcmError as e:
            with conn.stats.lock:
                conn.stats.send_errors += 1
            conn.stats.error(f"conn {conn.id} worker {self.worker}: {e}")
            return False
        with conn.stats.lock:
            conn.stats.replies += 1
        return True


class Conn:
    """One client connection: its mux, its KCM sockets and their worker threads."""

    def __init__(self, server, cid, sock, peer):
        self.lib = server.lib
        self.stats = server.stats
        self.handler = server.handler
        self.id = cid
        self.sock = sock
        self.peer = f"{peer[0]}:{peer[1]}"
        self.nworkers = server.args.workers
        self.max_msg = server.args.max_msg
        self.messages = [0] * self.nworkers
        self.bytes = [0] * self.nworkers
        self.ids = {}		# request id -> worker that saw it
        self.duplicate_ids = 0
        self.duplicates = []
        self.last_activity = time.monotonic()
        self.busy = 0
        self.stop = False
        self.transport_error = None
        self.threads = []
        self.fds = []
        self.state = self.handler.new_conn(cid)
        self.mux = self.lib.mux_create(server.framing, server.args.parser, server.args.max_msg)
        try:
            self.fds.append(self.lib.socket(self.mux))
            for _ in range(1, self.nworkers):
                self.fds.append(self.lib.clone(self.fds[0]))
            self.lib.attach(self.mux, sock.fileno())
        except kcm.KcmError:
            self.release()
            raise
        for w in range(self.nworkers):
            t = threading.Thread(target=self.work, args=(w,), name=f"c{cid}w{w}", daemon=True)
            t.start()
            self.threads.append(t)

    def work(self, w):
        fd = self.fds[w]
        buf = bytearray(self.max_msg + 1)
        cbuf = (kcm.ctypes.c_char * len(buf)).from_buffer(buf)
        ctx = Ctx(self, w)
        p = select.poll()
        p.register(fd, select.POLLIN)
        while True:
            if not p.poll(POLL_MS):
                if self.stop:
                    return
                continue
            try:
                r = self.lib.recv(fd, cbuf, kcm.MSG_DONTWAIT)
            except kcm.KcmError as e:
                self.stats.error(f"conn {self.id} worker {w}: {e}")
                return
            if r is None:
                continue
            n, truncated = r
            with self.stats.lock:
                self.busy += 1
                self.last_activity = time.monotonic()
            try:
                self.one(ctx, bytes(buf[:n]), truncated)
            finally:
                with self.stats.lock:
                    self.busy -= 1
                    self.last_activity = time.monotonic()

    def one(self, ctx, msg, truncated):
        w, st = ctx.worker, self.stats
        kind, ids = None, []
        if truncated:
            with st.lock:
                st.truncated += 1
            st.error(f"conn {self.id} worker {w}: message over {self.max_msg} bytes truncated")
        else:
            try:
                res = self.handler.handle(self.state, msg, ctx)
                kind, ids = res.kind, res.ids
            except Corrupt as e:
                with st.lock:
                    st.corrupt += 1
                st.error(f"conn {self.id} worker {w}: corrupt {len(msg)}-byte message: {e}: "
                         f"{msg[:48].hex()}")
            except Exception:
                with st.lock:
                    st.handler_errors += 1
                st.error(f"conn {self.id} worker {w}: handler failed on {len(msg)} bytes "
                         f"{msg[:48].hex()}: {traceback.format_exc()}")
        with st.lock:
            self.messages[w] += 1
            self.bytes[w] += len(msg)
            if kind:
                st.kinds[kind] += 1
            for i in ids:
                if i in self.ids:
                    self.duplicate_ids += 1
                    if len(self.duplicates) < MAX_ERRORS:
                        self.duplicates.append([repr(i), self.ids[i], w])
                else:
                    self.ids[i] = w

    def quiet(self):
        with self.stats.lock:
            return not self.busy and time.monotonic() - self.last_activity >= QUIET_S

    def finish(self, deadline):
        """Drain what was already redirected, then stop the workers and free the mux."""
        while not self.quiet() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop = True
        for t in self.threads:
            t.join()
        self.release()

    def release(self):
        if self.mux:
            try:
                self.lib.unattach(self.mux, self.sock.fileno())
            except kcm.KcmError as e:
                self.stats.error(str(e))
            for fd in self.fds:
                self.lib.close(fd)
            self.fds = []
            self.lib.mux_destroy(self.mux)
            self.mux = None
        self.sock.close()

    def summary(self):
        return {
            "id": self.id,
            "peer": self.peer,
            "messages": sum(self.messages),
            "bytes": sum(self.bytes),
            "workers": [{"worker": w, "messages": self.messages[w], "bytes": self.bytes[w]}
                        for w in range(self.nworkers)],
            "workers_used": sum(1 for m in self.messages if m),
            "transport_error": self.transport_error,
            "ids": len(self.ids),
            "duplicate_ids": self.duplicate_ids,
            "duplicates": self.duplicates,
        }


class Server:
    def __init__(self, args):
        self.args = args
        self.lib = kcm.Lib(args.lib)
        self.framing = None if args.parser else self.lib.framing(args.framing)
        self.stats = Stats()
        self.handler = importlib.import_module(f"handlers.{args.proto}").Server(args)
        self.conns = []
        self.active = []
        self.finishers = []
        self.stopping = False
        self.failed = False

    def run(self):
        host, port = self.args.listen.rsplit(":", 1)
        ls = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, int(port)))
        ls.listen(64)
        if self.args.ready_file:
            open(self.args.ready_file, "w").close()
        deadline = time.monotonic() + self.args.timeout if self.args.timeout else None
        timed_out = False
        p = select.poll()
        p.register(ls, select.POLLIN)
        while not self.stopping:
            if deadline and time.monotonic() > deadline:
                timed_out = True
                self.stats.error(f"timed out after {self.args.timeout} s")
                break
            done = len(self.conns) - len(self.active)
            if self.args.conns and done >= self.args.conns:
                break
            for fd, ev in p.poll(POLL_MS):
                if fd == ls.fileno():
                    self.accept(ls, p)
                    continue
                conn = next(c for c in self.active if c.sock.fileno() == fd)
                p.unregister(fd)
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    conn.transport_error = errno.errorcode.get(err, str(err))
                if err in PARSE_ERRORS:
                    self.stats.error(f"conn {conn.id} from {conn.peer}: transport failed: "
                                     f"{os.strerror(err)}")
                self.close(conn)
        ls.close()
        for conn in list(self.active):
            self.close(conn)
        for t in self.finishers:
            t.join()
        return timed_out

    def accept(self, ls, p):
        sock, peer = ls.accept()
        cid = len(self.conns)
        try:
            conn = Conn(self, cid, sock, peer)
        except kcm.KcmError as e:
            self.stats.error(f"conn {cid} from {peer[0]}:{peer[1]}: {e}")
            sock.close()
            self.failed = self.stopping = True
            return
        self.conns.append(conn)
        self.active.append(conn)
        # The transport's bytes belong to strparser now; only its hangup is ours to see.
        p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)

    def close(self, conn):
        self.active.remove(conn)
        t = threading.Thread(target=self.finish, args=(conn,), daemon=True)
        t.start()
        self.finishers.append(t)

    def finish(self, conn):
        conn.finish(time.monotonic() + self.args.drain)
        print(f"kcm_proto_server: conn {conn.id} from {conn.peer} done: "
              f"{sum(conn.messages)} messages, per worker {conn.messages}", file=sys.stderr)

    def summary(self, timed_out):
        st = self.stats
        conns = [c.summary() for c in self.conns]
        per_worker = [{"worker": w,
                       "messages": sum(c.messages[w] for c in self.conns),
                       "bytes": sum(c.bytes[w] for c in self.conns)}
                      for w in range(self.args.workers)]
        messages = sum(c["messages"] for c in conns)
        bad = st.corrupt + st.truncated + st.handler_errors
        s = {
            "proto": self.args.proto,
            "parser": self.args.parser,
            "framing": None if self.args.parser else self.args.framing,
            "workers_per_conn": self.args.workers,
            "connections": len(conns),
            "messages": messages,
            "bytes": sum(c["bytes"] for c in conns),
            "whole": messages - bad,
            "corrupt": st.corrupt,
            "truncated": st.truncated,
            "handler_errors": st.handler_errors,
            "parse_errors": sum(1 for c in self.conns if c.transport_error in PARSE_NAMES),
            "ids": sum(c["ids"] for c in conns),
            "duplicate_ids": sum(c["duplicate_ids"] for c in conns),
            "max_workers_used": max((c["workers_used"] for c in conns), default=0),
            "replies": st.replies,
            "send_errors": st.send_errors,
            "kinds": dict(sorted(st.kinds.items())),
            "workers": per_worker,
            "conns": conns,
            "app": self.handler.summary(),
            "errors": st.errors,
            "timed_out": timed_out,
        }
        return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    ap.add_argument("--proto", required=True, choices=PROTOCOLS)
    ap.add_argument("--listen", required=True, metavar="IP:PORT")
    ap.add_argument("--workers", type=int, default=4, help="KCM sockets (threads) per connection")
    ap.add_argument("--parser", metavar="PATH", help="parser object (build/parsers/NAME.bpf.o)")
    ap.add_argument("--framing", metavar="SPEC",
                    help="length-prefix framing instead of a parser, e.g. u32be+4")
    ap.add_argument("--max-msg", type=int, default=1 << 20, help="largest message in bytes")
    ap.add_argument("--lib", default=os.environ.get("KCM_LIB", ""),
                    help="libkcm.so to use (default: build/libkcm.so)")
    ap.add_argument("--summary", metavar="FILE", help="write the JSON summary here (default stdout)")
    ap.add_argument("--ready-file", metavar="FILE", help="created once the server listens")
    ap.add_argument("--conns", type=int, default=0, help="exit after this many connections ended")
    ap.add_argument("--timeout", type=float, default=60, help="give up after this many seconds")
    ap.add_argument("--drain", type=float, default=5,
                    help="seconds a closed connection may take to drain")
    ap.add_argument("--thrift-gen", metavar="DIR", help="thrift --gen py output for the thrift IDL")
    args = ap.parse_args()
    if bool(args.parser) == bool(args.framing):
        handler = importlib.import_module(f"handlers.{args.proto}")
        if args.parser or not handler.FRAMING:
            ap.error("give exactly one of --parser and --framing"
                     if args.parser else f"{args.proto} needs --parser")
        args.framing = handler.FRAMING
    if not 1 <= args.workers <= 64:
        ap.error("--workers must be 1..64")
    if not args.lib:
        args.lib = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/libkcm.so")

    srv = Server(args)

    def on_signal(signum, frame):
        srv.stopping = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        timed_out = srv.run()
    except OSError as e:
        print(f"kcm_proto_server: {e}", file=sys.stderr)
        return 1
    out = json.dumps(srv.summary(timed_out), indent=1)
    if args.summary:
        tmp = args.summary + ".tmp"
        with open(tmp, "w") as f:
            f.write(out + "\n")
        os.rename(tmp, args.summary)
    else:
        print(out)
    return 1 if timed_out or srv.failed else 0


if __name__ == "__main__":
    sys.exit(main())
