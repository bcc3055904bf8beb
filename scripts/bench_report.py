#!/usr/bin/env python3
"""Write docs/benchmarks.md and its gnuplot plots from the runs of scripts/bench.sh.

    bench_report.py --results build/bench/results.jsonl --meta build/bench/meta.json
                    [--tx build/bench/tx.json] [--out docs/benchmarks.md]
                    [--plots DIR] [--mem-bound BYTES]

results.jsonl holds one rx_bench JSON line per run, with the cell label, kind, rep and
seq that bench.sh adds. Plots go to DIR (default: bench/ next to the report) and are
linked relative to the report. Speed is reported, never judged into the exit status:
0 report written, 1 input unreadable or a plot failed, 2 usage error.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

VARIANTS = ["kcm", "kcm-batch", "kcm-frame", "kcm-prog", "demux", "direct"]
TUNED = {"kcm": "default settings (adaptive batching, flow control)",
         "kcm-batch": "batch 1024 set explicitly",
         "kcm-frame": "the Thrift parser program with its splitter (kcm-loader --frame)",
         "kcm-prog": "the Thrift parser program, one message per redirect"}
COLORS = {"kcm": "#1f77b4", "kcm-batch": "#2ca02c", "demux": "#d62728", "direct": "#7f7f7f",
          "kcm-frame": "#8c564b", "kcm-prog": "#e377c2",
          "skmsg": "#ff7f0e", "mutex": "#9467bd"}
KINDS = ["firehose", "reqresp", "hot", "stall"]


def die(msg):
    print(f"bench_report: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- numbers ----

def stats(vals):
    vals = [v for v in vals if isinstance(v, (int, float))]
    if not vals:
        return None
    return {"med": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def med(st):
    return st["med"] if st else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def size_name(b):
    if b >= 1024 and b % 1024 == 0:
        return f"{b // 1024} KiB"
    return f"{b} B"


def rate(v):
    """msgs/s in M or k, 3 significant digits."""
    if v is None:
        return "n/a"
    for div, unit in ((1e6, " M"), (1e3, " k")):
        if v >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def num(v, digits=3):
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def span(st, fmt=num, scale=1.0):
    """median (min-max)"""
    if not st:
        return "n/a"
    m, lo, hi = (fmt(st[k] * scale) for k in ("med", "min", "max"))
    return m if st["n"] == 1 else f"{m} ({lo}-{hi})"


def xr(r):
    return "n/a" if r is None else f"{r:.2f}x"


def pct(v):
    return "n/a" if v is None else f"{v * 100:.1f}%"


def mib(b):
    return "n/a" if b is None else f"{b:,.0f} B ({b / 1048576:.1f} MiB)"


# ---- input ----

class Cell:
    def __init__(self, label, line):
        self.label = label
        self.kind = line.get("kind") or line.get("mode", "firehose")
        self.size = line.get("size")
        self.conns = line.get("conns")
        self.workers = line.get("workers")
        self.outstanding = line.get("outstanding")
        self.hot = line.get("hot_pct")
        self.stall = line.get("stall_ms")
        self.runs = {}          # variant -> [lines]

    def fill(self, line):
        for attr, key in (("outstanding", "outstanding"), ("hot", "hot_pct"),
                          ("stall", "stall_ms")):
            if getattr(self, attr) is None and line.get(key) is not None:
                setattr(self, attr, line[key])

    @property
    def topo(self):
        return f"{self.conns}x{self.workers}"

    def ok_runs(self, v):
        return [r for r in self.runs.get(v, []) if r.get("ok") is True]

    def st(self, v, key):
        return stats([r.get(key) for r in self.ok_runs(v)])

    def util(self, v, ncpu):
        """median share of the machine's CPUs kept busy"""
        return stats([r["cpu_s"] / (r["secs"] * ncpu) for r in self.ok_runs(v)
                      if r.get("cpu_s") is not None and r.get("secs")])

    def median_run(self, v, key):
        runs = sorted((r for r in self.ok_runs(v) if r.get(key) is not None),
                      key=lambda r: r[key])
        return runs[(len(runs) - 1) // 2] if runs else None


def load(results_path):
    cells = {}
    order = []
    bad_lines = 0
    with open(results_path) as f:
        for n, text in enumerate(f, 1):
            text = text.strip()
            if not text:
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                bad_lines += 1
                print(f"bench_report: {results_path}:{n}: not JSON, skipped", file=sys.stderr)
                continue
            label = line.get("cell") or (
                f"{line.get('mode')} {line.get('size')}B {line.get('conns')}x{line.get('workers')}")
            if label not in cells:
                cells[label] = Cell(label, line)
                order.append(label)
            c = cells[label]
            c.fill(line)
            c.runs.setdefault(line.get("variant", "?"), []).append(line)
    return [cells[k] for k in order], bad_lines


# ---- plots ----

class Plotter:
    def __init__(self, outdir, rel):
        self.outdir = outdir
        self.rel = rel
        self.tmp = tempfile.mkdtemp(prefix="kcm-bench-plot.")
        self.made = []
        self.failed = []
        out = subprocess.run(["gnuplot", "-e", "set terminal pngcairo"],
                             capture_output=True, text=True)
        self.term = "pngcairo" if out.returncode == 0 and not out.stderr.strip() else "png"

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def data(self, name, rows):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            for row in rows:
                f.write(" ".join(fmt_cell(x) for x in row) + "\n")
        return path

    def run(self, name, script, size="1100,800"):
        png = os.path.join(self.outdir, name)
        head = (f'set terminal {self.term} size {size} noenhanced\n'
                f'set output "{png}"\nset datafile missing "NaN"\n'
                'set grid ytics\nset key top left\n')
        path = os.path.join(self.tmp, name + ".gp")
        with open(path, "w") as f:
            f.write(head + script)
        out = subprocess.run(["gnuplot", path], capture_output=True, text=True)
        if out.returncode != 0 or not os.path.exists(png) or os.path.getsize(png) == 0:
            self.failed.append(f"{name}: {out.stderr.strip()[-300:]}")
            return None
        self.made.append(name)
        return f"{self.rel}/{name}"


def plural(n):
    return "" if str(n) == "1" else "s"


def gq(text):
    """a gnuplot string literal"""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def fmt_cell(x):
    if x is None:
        return "NaN"
    if isinstance(x, str):
        return '"' + x.replace('"', "'") + '"'
    return repr(float(x))


def plot_vs_size(p, name, cells, variants, key, ylabel, scale=1.0, log=True):
    """One panel per topology: key against message size, a line per variant."""
    topos = []
    for c in cells:
        if c.topo not in topos and any(c.st(v, key) for v in variants):
            topos.append(c.topo)
    if not topos:
        return None
    cols = 2 if len(topos) > 1 else 1
    rows = (len(topos) + cols - 1) // cols
    script = [f"set multiplot layout {rows},{cols} title {gq(ylabel + ' by message size')}",
              "set logscale x 2", "set xrange [32:524288]",
              'set xtics ("64 B" 64, "1 KiB" 1024, "16 KiB" 16384, "256 KiB" 262144)',
              "set xlabel 'message size'", f"set ylabel {gq(ylabel)}",
              "set key outside top center horizontal"]
    if log:
        script.append("set logscale y 10")
    for t in topos:
        plots = []
        for v in variants:
            rows_ = []
            for c in sorted((c for c in cells if c.topo == t), key=lambda c: c.size):
                st = c.st(v, key)
                # a log axis cannot show 0 (a run too short for /proc/stat's ticks)
                if st and (not log or st["min"] > 0):
                    rows_.append((c.size, st["med"] * scale, st["min"] * scale,
                                  st["max"] * scale))
            if rows_:
                f = p.data(f"{name}-{t}-{v}", rows_)
                plots.append(f"'{f}' using 1:2:3:4 with yerrorlines lw 2 pt 7 "
                             f"lc rgb '{COLORS.get(v, '#000000')}' title {gq(v)}")
        conns, workers = t.split("x")
        script.append(f"set title {gq(f'{conns} connection{plural(conns)} x {workers} workers')}")
        if plots:
            script.append("plot " + ", ".join(plots))
        else:  # a panel without data still has its place
            script += ["unset logscale y", "set label 1 'no data' at graph 0.5,0.5 center",
                       "plot [64:128] 0 notitle lc rgb 'white'", "unset label 1"]
            if log:
                script.append("set logscale y 10")
    script.append("unset multiplot")
    return p.run(name, "\n".join(script) + "\n")


def plot_bars(p, name, title, groups, series, ylabel, log=False, size="1100,600"):
    """Clustered bars: groups = [(label, {series: stats})], errorbars min-max."""
    if not groups or not any(any(g[1].get(s) for s in series) for g in groups):
        return None
    rows = []
    for label, vals in groups:
        row = [label]
        for s in series:
            st = vals.get(s)
            row += [st["med"], st["min"], st["max"]] if st else [None, None, None]
        rows.append(row)
    f = p.data(name, rows)
    plots = []
    for i, s in enumerate(series):
        col = 2 + 3 * i
        xt = ":xtic(1)" if i == 0 else ""
        plots.append(f"'{f}' using {col}:{col + 1}:{col + 2}{xt} "
                     f"lc rgb '{COLORS.get(s, '#000000')}' title {gq(s)}")
    script = [f"set title {gq(title)}", f"set ylabel {gq(ylabel)}",
              "set style data histograms", "set style histogram errorbars gap 1 lw 1",
              "set style fill solid 0.8 border -1", "set boxwidth 0.9",
              "set xtics rotate by 30 right", "set key outside top right"]
    if log:
        script += ["set logscale y 10"]
    else:
        script += ["set yrange [0:*]"]
    script.append("plot " + ", ".join(plots))
    width = max(1100, 300 + 25 * len(series) * len(groups))
    return p.run(name, "\n".join(script) + "\n", f"{width},{size.split(',')[1]}")


# ---- the report ----

class Report:
    def __init__(self, args):
        self.args = args
        self.meta = json.load(open(args.meta))
        self.cells, self.bad_lines = load(args.results)
        self.tx = None
        if args.tx and os.path.exists(args.tx):
            try:
                self.tx = json.load(open(args.tx))
            except json.JSONDecodeError:
                print(f"bench_report: {args.tx}: not JSON, transmit left out", file=sys.stderr)
        self.ncpu = self.meta.get("ncpu") or os.cpu_count()
        self.variants = [v for v in VARIANTS if any(v in c.runs for c in self.cells)]
        self.variants += sorted({v for c in self.cells for v in c.runs} - set(self.variants))
        self.out = []
        self.targets = []

    def w(self, *lines):
        self.out.extend(lines)

    def of_kind(self, kind):
        return [c for c in self.cells if c.kind == kind]

    def find(self, kind, size=None, topo=None):
        return [c for c in self.of_kind(kind)
                if (size is None or c.size == size) and (topo is None or c.topo == topo)]

    # -- targets --

    def target(self, name, cell, variant, measured, need, ok, why=""):
        status = "not measured" if ok is None else ("met" if ok else "**missed**")
        self.targets.append({"name": name, "cell": cell, "variant": variant,
                             "measured": measured, "need": need, "status": status,
                             "ok": ok, "why": why})

    def why_speed(self, c, v, base="demux"):
        """A sentence from the numbers: who was faster, and was it CPU or waiting."""
        mv, mb = med(c.st(v, "msgs_per_s")), med(c.st(base, "msgs_per_s"))
        cv, cb = med(c.st(v, "cpu_s_per_m")), med(c.st(base, "cpu_s_per_m"))
        uv, ub = med(c.util(v, self.ncpu)), med(c.util(base, self.ncpu))
        fastest = max((x for x in self.variants if c.st(x, "msgs_per_s")),
                      key=lambda x: med(c.st(x, "msgs_per_s")), default=None)
        s = (f"In {c.label}, {v} moved {rate(mv)} msgs/s against {base}'s {rate(mb)} "
             f"({xr(ratio(mv, mb))})")
        if fastest and fastest != v:
            s += f"; the fastest variant was {fastest} ({rate(med(c.st(fastest, 'msgs_per_s')))})"
        s += (f". CPU per million messages: {v} {num(cv)} s, {base} {num(cb)} s "
              f"({xr(ratio(cv, cb))}); CPUs busy {pct(uv)} vs {pct(ub)} of {self.ncpu}.")
        if cv is not None and cb is not None and uv is not None:
            if cv > cb:
                s += (f" {v} spends more CPU per message: the gap is work per message "
                      "(per redirect: KERNEL-NOTES, \"Receive cost\"), not waiting.")
            elif uv < 0.8:
                s += (f" {v} spends less CPU per message yet moves fewer: the CPUs were partly "
                      "idle, so the time goes to waiting (queueing, wakeups, retries), not work.")
        return s

    def eval_targets(self):
        tuned = [v for v in ("kcm", "kcm-batch") if v in self.variants]
        # 1. 64 B 4x2 >= 1.0x demux msgs/s
        for c in self.find("firehose", 64, "4x2") or [None]:
            for v in tuned:
                if c is None:
                    self.target("64 B 4x2 msgs/s >= 1.0x demux", "64 B 4x2", v, "", ">= 1.0x",
                                None)
                    continue
                r = ratio(med(c.st(v, "msgs_per_s")), med(c.st("demux", "msgs_per_s")))
                ok = None if r is None else r >= 1.0
                self.target("64 B 4x2 msgs/s >= 1.0x demux", c.label, v, xr(r), ">= 1.0x", ok,
                            self.why_speed(c, v) if ok is False else "")
        # 2. 1 KiB 4x2 >= 2.0x demux msgs/s at <= 0.5x its CPU per message
        for c in self.find("firehose", 1024, "4x2") or [None]:
            for v in tuned:
                if c is None:
                    self.target("1 KiB 4x2 msgs/s >= 2.0x demux, CPU/msg <= 0.5x", "1 KiB 4x2",
                                v, "", ">= 2.0x, <= 0.5x", None)
                    continue
                r = ratio(med(c.st(v, "msgs_per_s")), med(c.st("demux", "msgs_per_s")))
                rc = ratio(med(c.st(v, "cpu_s_per_m")), med(c.st("demux", "cpu_s_per_m")))
                ok = None if r is None or rc is None else (r >= 2.0 and rc <= 0.5)
                self.target("1 KiB 4x2 msgs/s >= 2.0x demux, CPU/msg <= 0.5x", c.label, v,
                            f"{xr(r)} msgs/s, {xr(rc)} CPU/msg", ">= 2.0x, <= 0.5x", ok,
                            self.why_speed(c, v) if ok is False else "")
        # 3. 16 KiB >= 1.8x demux msgs/s and >= 0.9x direct bytes/s
        for c in self.find("firehose", 16384) or [None]:
            for v in tuned:
                if c is None:
                    self.target("16 KiB msgs/s >= 1.8x demux, bytes/s >= 0.9x direct", "16 KiB",
                                v, "", ">= 1.8x, >= 0.9x", None)
                    continue
                r = ratio(med(c.st(v, "msgs_per_s")), med(c.st("demux", "msgs_per_s")))
                rd = ratio(med(c.st(v, "bytes_per_s")), med(c.st("direct", "bytes_per_s")))
                ok = None if r is None or rd is None else (r >= 1.8 and rd >= 0.9)
                why = ""
                if ok is False:
                    why = self.why_speed(c, v) if r < 1.8 else ""
                    if rd < 0.9:
                        why += (f" Against the direct ceiling {v} reached {xr(rd)} of its bytes/s "
                                f"({num(med(c.st(v, 'bytes_per_s')) / 1e6)} vs "
                                f"{num(med(c.st('direct', 'bytes_per_s')) / 1e6)} MB/s).")
                self.target("16 KiB msgs/s >= 1.8x demux, bytes/s >= 0.9x direct", c.label, v,
                            f"{xr(r)} demux msgs/s, {xr(rd)} direct bytes/s",
                            ">= 1.8x, >= 0.9x", ok, why.strip())
        # 4. hot connection imbalance <= 5% (direct ~100%)
        for c in self.of_kind("hot") or [None]:
            for v in tuned:
                if c is None:
                    self.target("hot connection: imbalance <= 5%", "hot", v, "", "<= 5%", None)
                    continue
                im = med(c.st(v, "imbalance"))
                ok = None if im is None else im <= 0.05
                d = med(c.st("direct", "imbalance"))
                why = ""
                if ok is False:
                    r = c.median_run(v, "imbalance")
                    wm = r.get("worker_msgs") or [] if r else []
                    tot = sum(wm) or 1
                    why = (f"In {c.label} the median {v} run split messages "
                           f"{' : '.join(f'{x / tot * 100:.1f}%' for x in wm)} over the workers "
                           f"(direct: imbalance {pct(d)}).")
                    if v == "kcm-batch":
                        why += (" With batching, one redirect carries every complete message "
                                "available, so balance can only be as fine as a batch.")
                self.target("hot connection: imbalance <= 5%", c.label, v,
                            f"{pct(im)} (direct {pct(d)})", "<= 5%", ok, why)
        # 5. request/response p99 no worse than demux
        for c in self.of_kind("reqresp") or [None]:
            for v in tuned:
                if c is None:
                    self.target("request/response p99 <= demux", "reqresp", v, "", "<= 1.0x", None)
                    continue
                p, pd = med(c.st(v, "lat_p99_us")), med(c.st("demux", "lat_p99_us"))
                r = ratio(p, pd)
                ok = None if r is None else r <= 1.0
                why = ""
                if ok is False:
                    p50, p50d = med(c.st(v, "lat_p50_us")), med(c.st("demux", "lat_p50_us"))
                    why = (f"In {c.label}, p99 {num(p)} us against demux {num(pd)} us; p50 "
                           f"{num(p50)} vs {num(p50d)} us.")
                    if p50 is not None and p50d is not None and p50 > p50d:
                        why += (" The median is slower too: a fixed extra cost per message "
                                "(redirect, kworker hop, wakeup) shifts the whole distribution.")
                    else:
                        why += (" The median is not slower: only the tail is, from occasional "
                                "delays (batches, backlog retries, scheduling).")
                self.target("request/response p99 <= demux", c.label, v,
                            f"{num(p)} us vs {num(pd)} us ({xr(r)})", "<= 1.0x", ok, why)
        # 6. stalled worker: bounded memory, others keep >= 90%
        bound = self.args.mem_bound
        for c in self.of_kind("stall") or [None]:
            for v in tuned:
                if c is None:
                    self.target("stalled worker: memory bounded", "stall", v, "", "", None)
                    self.target("stalled worker: others keep >= 90%", "stall", v, "", ">= 90%",
                                None)
                    continue
                # socket memory misses what sockmap queues uncharged: the machine's too
                ms, mm = c.st(v, "peak_mem_bytes"), c.st(v, "peak_sys_mem_bytes")
                m = ms if not mm or (ms and ms["max"] >= mm["max"]) else mm
                ok = None if m is None else m["max"] <= bound
                why = ""
                if ok is False:
                    why = (f"In {c.label} {v} held up to {mib(m['max'])} of memory (socket "
                           f"buffers {mib(ms['max']) if ms else 'n/a'}, machine "
                           f"{mib(mm['max']) if mm else 'n/a'}), above the {mib(bound)} bound; "
                           f"{self.stall_scale(c, v)}")
                self.target("stalled worker: memory bounded", c.label, v,
                            f"peak {mib(m['max']) if m else 'n/a'}", f"<= {mib(bound)}", ok, why)
                o = c.st(v, "others_ratio")
                ok = None if o is None else o["med"] >= 0.9
                why = ""
                if ok is False:
                    od = med(c.st("demux", "others_ratio"))
                    odi = med(c.st("direct", "others_ratio"))
                    why = (f"In {c.label} the other workers of {v} kept {pct(o['med'])} of their "
                           f"rate during the stall (demux {pct(od)}, direct {pct(odi)}): messages "
                           "kept going to the stalled worker, or its backlog slowed everyone.")
                self.target("stalled worker: others keep >= 90%", c.label, v,
                            pct(o["med"]) if o else "n/a", ">= 90%", ok, why)
        # 7. transmit
        self.tx_targets()

    def stall_scale(self, c, v):
        r = c.median_run(v, "msgs_per_s")
        if not r or not r.get("stall_ms"):
            return ""
        per_worker = r["msgs_per_s"] / max(1, r.get("workers") or 1)
        would = per_worker * r["stall_ms"] / 1000 * r.get("size", 0)
        text = (f"queueing all the stalled worker's share for {r['stall_ms']} ms would take about "
                f"{mib(would)} of payload: memory grew with the stall.")
        if v.startswith("kcm"):
            text += (" sockmap has no receive backpressure (KERNEL-NOTES): round-robin keeps "
                     "steering the stalled KCM socket its share, and once its buffer is full the "
                     "redirects wait in the kernel, uncharged, without slowing the TCP peer. "
                     "Only the harness's cap on messages in flight (1 GiB in stall runs) "
                     "bounded it; an application needs such a cap, or kcm_recv_disable() on a "
                     "worker that stops reading.")
        return text

    def tx_cells(self):
        return self.tx.get("cells", []) if self.tx else []

    def tx_variant(self, cell, name):
        for v in cell.get("variants", []):
            if v.get("name") == name:
                return v
        return None

    def tx_targets(self):
        if not self.tx:
            self.target("transmit: atomic >= 0.8x plain sk_msg msgs/s", "transmit", "kcm", "",
                        ">= 0.8x", None)
            self.target("transmit: SO_SNDBUF 4 KiB at most 2x slower", "transmit", "kcm", "",
                        "<= 2x", None)
            return
        by_body = {}
        for cell in self.tx_cells():
            by_body.setdefault(cell["body"], {})[cell["sndbuf"]] = cell
        for body, cs in sorted(by_body.items()):
            d = cs.get(0)
            if d:
                k, s = self.tx_variant(d, "kcm"), self.tx_variant(d, "skmsg")
                r = ratio(k and k["msgs_per_s"]["median"], s and s["msgs_per_s"]["median"])
                ok = None if r is None else r >= 0.8
                why = ""
                if ok is False:
                    why = (f"At {body} B kcm sent {rate(k['msgs_per_s']['median'])} msgs/s against "
                           f"the plain redirect's {rate(s['msgs_per_s']['median'])}; CPU per "
                           f"message {num(k['cpu_us_per_msg']['median'])} vs "
                           f"{num(s['cpu_us_per_msg']['median'])} us (docs/transmit.md).")
                self.target("transmit: atomic >= 0.8x plain sk_msg msgs/s",
                            f"body {body} B, default SO_SNDBUF", "kcm", xr(r), ">= 0.8x", ok, why)
            small = [cs[b] for b in sorted(cs) if b != 0]
            if d and small:
                k0, k1 = self.tx_variant(d, "kcm"), self.tx_variant(small[0], "kcm")
                x = ratio(k0 and k0["msgs_per_s"]["median"], k1 and k1["msgs_per_s"]["median"])
                ok = None if x is None else x <= 2.0
                why = ""
                if ok is False:
                    m0 = self.tx_variant(d, "mutex")
                    m1 = self.tx_variant(small[0], "mutex")
                    mx = ratio(m0 and m0["msgs_per_s"]["median"], m1 and m1["msgs_per_s"]["median"])
                    why = (f"At {body} B kcm fell from {rate(k0['msgs_per_s']['median'])} to "
                           f"{rate(k1['msgs_per_s']['median'])} msgs/s with SO_SNDBUF "
                           f"{small[0]['sndbuf']} (effective {small[0].get('sndbuf_effective')}); "
                           f"the mutex baseline slowed {xr(mx)}. See docs/transmit.md.")
                self.target("transmit: SO_SNDBUF 4 KiB at most 2x slower",
                            f"body {body} B", "kcm", f"{xr(x)} slower", "<= 2x", ok, why)

    # -- sections --

    def header(self):
        m = self.meta
        self.w("# Benchmarks: receive and transmit", "",
               "Generated by `scripts/bench.sh` and `scripts/bench_report.py` "
               f"({m.get('start', '?')}). Do not edit by hand: run `make bench` again "
               "(`scripts/bench.sh --report-only` rewrites this page from the last run's "
               "data).", "")
        if m.get("quick"):
            self.w("> **QUICK run**: one run per variant at small counts over a reduced matrix. "
                   "It checks that the harness works; its numbers are not for conclusions.", "")

    def summary(self):
        runs = [r for c in self.cells for rs in c.runs.values() for r in rs]
        ok = sum(1 for r in runs if r.get("ok") is True)
        counted = [t for t in self.targets if t["ok"] is not None]
        met = sum(1 for t in counted if t["ok"])
        self.w("## Summary", "")
        tx = ""
        if self.tx:
            tx = "; transmit: kcm " + ("intact in every run" if self.tx.get("kcm_intact")
                                       else "**NOT intact**")
        self.w(f"- Correctness: {ok} of {len(runs)} receive runs intact (nothing lost, duplicated "
               "or corrupted)" + ("" if ok == len(runs) else " — **see Correctness**") + tx + ".")
        self.w(f"- Targets: {met} of {len(counted)} checks met "
               f"({len(self.targets) - len(counted)} not measured in this run); see Targets.")
        names = []
        for t in self.targets:
            if t["name"] not in names:
                names.append(t["name"])
        for n in names:
            rows = [t for t in self.targets if t["name"] == n and t["ok"] is not None]
            if not rows:
                continue
            by = {}
            for t in rows:
                by.setdefault(t["variant"], []).append(t["ok"])
            parts = [f"{v}: {sum(x)}/{len(x)}" for v, x in by.items()]
            self.w(f"  - {n}: met in " + ", ".join(parts))
        self.w("- Against the kernel's own AF_KCM (Debian 6.1 in qemu, `scripts/bench-afkcm.sh`; "
               "this machine's kernel has no AF_KCM): see [afkcm.md](bench/afkcm.md).")
        self.w("")

    def machine(self):
        m = self.meta
        sc = m.get("sysctl", {})
        self.w("## Machine and settings", "",
               f"- kernel {m.get('kernel')}, {m.get('ncpu')} CPUs, {m.get('cpu_model')}; "
               f"CPU frequency governor: {m.get('governor')}",
               f"- date {m.get('start')}; took {m.get('elapsed_s', 0) // 60} min "
               f"{m.get('elapsed_s', 0) % 60} s; load average at start {m.get('loadavg_start')}, "
               f"at end {m.get('loadavg_end')} (other work on the machine skews the figures)",
               f"- source: git {m.get('git')}",
               f"- command: `{m.get('command')}`",
               f"- receive: `{m.get('rx_bench')}`, {m.get('runs')} run(s) per variant and cell, "
               f"variants interleaved in each repetition ({' '.join(m.get('variants', []))}, "
               f"then again); SCALE {m.get('scale')}",
               f"- transmit: `{m.get('tx_bench') or 'not run'}`",
               "- sysctl: " + ", ".join(f"{k} = {v}" for k, v in sc.items()),
               "- cells (kind, message size in bytes including the 4-byte length prefix, "
               "connections, workers, rx_bench arguments):", "")
        for c in m.get("cells", []):
            self.w(f"  - `{c}`")
        if m.get("leftovers"):
            self.w("", "- **left behind after the run**: " + "; ".join(m["leftovers"]))
        self.w("")

    def method(self):
        self.w("## What runs", "",
               "Each run is one `rx_bench` process over loopback TCP: C client connections send "
               "length-prefixed messages (4-byte big-endian length, then the connection, a "
               "sequence number, a send timestamp, and a tag in the last 8 bytes) to W workers "
               "that check every message (length, connection, sequence bitmap, tag).", "",
               "- **kcm**: libkcm at its default settings (each redirect carries every complete "
               "message available, receive flow control on), one KCM socket per worker.",
               "- **kcm-batch**: the same with `batch` 1024 set explicitly.",
               "- **kcm-frame**: the shipped Thrift parser program instead of the length "
               "prefix, batched, with its user-space splitter (`kcm-loader create --frame`).",
               "- **kcm-prog**: the same program without a splitter: one message per redirect "
               "to UDP KCM sockets.",
               "- **demux**: userspace demultiplexer: an epoll thread reads the connections, cuts "
               "frames, hands them to workers in batches; workers re-split.",
               "- **direct**: the ceiling: each worker reads its own connections (no "
               "multiplexing, so no balance across connections).", "",
               "Workloads: **firehose** (N messages pipelined as fast as possible, split evenly "
               "over the connections); **reqresp** (closed loop: K requests outstanding per "
               "connection, replies matched by id, latency per request); **hot** (firehose with "
               "90% of the messages on connection 0); **stall** (timed firehose; worker 0 stops "
               "reading 0.5 s in, for the given time; kernel memory of the receive path is sampled "
               "every 20 ms, and the other workers' rate during the stall is compared with their "
               "rate before it).", "",
               "Metrics: msgs/s and MB/s (10^6 bytes) = messages received / wall time of the run; "
               "CPU-s per M msgs = busy time of the whole machine from `/proc/stat` (all CPUs, "
               "user + system + irq + softirq + steal, 10 ms resolution) per million messages; "
               "imbalance = (max - min) / max of the workers' message counts; latency "
               "percentiles per request. Figures are medians over the intact runs with min-max "
               "in brackets; \"x demux\" is the variant's median divided by the demux median of "
               "the same cell and run.", "")

    def targets_section(self):
        self.w("## Targets", "",
               "Reported, never asserted. kcm = default settings, kcm-batch = the documented "
               "tuning. The stalled-worker memory bound is "
               f"{mib(self.args.mem_bound)} (`--mem-bound`).", "",
               "| target | cell | variant | measured | wanted | result |",
               "|---|---|---|---|---|---|")
        for t in self.targets:
            self.w(f"| {t['name']} | {t['cell']} | {t['variant']} | {t['measured'] or 'n/a'} | "
                   f"{t['need']} | {t['status']} |")
        missed = [t for t in self.targets if t["ok"] is False]
        self.w("")
        if missed:
            self.w("### Where targets were missed, and why", "")
            for t in missed:
                self.w(f"- **{t['name']}** ({t['cell']}, {t['variant']}): {t['why']}")
            self.w("")

    def firehose(self, plots):
        cells = self.of_kind("firehose")
        if not cells:
            return
        self.w("## Firehose (pipelined)", "")
        for name, alt in plots:
            if name:
                self.w(f"![{alt}]({name})", "")
        self.w("| size | conns x workers | variant | msgs/s | x demux | MB/s | CPU-s per M msgs | "
               "CPU x demux | CPUs busy | imbalance | intact runs |",
               "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in sorted(cells, key=lambda c: (c.size, c.conns, c.workers)):
            self.rows(c, speed=True)
        self.w("")

    def rows(self, c, speed=True):
        dm = med(c.st("demux", "msgs_per_s"))
        dc = med(c.st("demux", "cpu_s_per_m"))
        for v in self.variants:
            if v not in c.runs:
                continue
            ms = c.st(v, "msgs_per_s")
            self.w(f"| {size_name(c.size)} | {c.topo} | {v} | {span(ms, rate)} | "
                   f"{xr(ratio(med(ms), dm))} | {span(c.st(v, 'bytes_per_s'), num, 1e-6)} | "
                   f"{span(c.st(v, 'cpu_s_per_m'))} | "
                   f"{xr(ratio(med(c.st(v, 'cpu_s_per_m')), dc))} | "
                   f"{pct(med(c.util(v, self.ncpu)))} | {span(c.st(v, 'imbalance'), pct)} | "
                   f"{len(c.ok_runs(v))}/{len(c.runs[v])} |")

    def reqresp(self, plot):
        cells = self.of_kind("reqresp")
        if not cells:
            return
        self.w("## Request/response (closed loop, latency)", "")
        if plot:
            self.w(f"![p99 latency]({plot})", "")
        self.w("| size | conns x workers | outstanding | variant | replies/s | x demux | "
               "p50 us | p99 us | p99 x demux | p99.9 us | CPU-s per M msgs | intact runs |",
               "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in sorted(cells, key=lambda c: (c.outstanding or 0, c.size, c.conns)):
            dm = med(c.st("demux", "msgs_per_s"))
            dp = med(c.st("demux", "lat_p99_us"))
            for v in self.variants:
                if v not in c.runs:
                    continue
                ms, p99 = c.st(v, "msgs_per_s"), c.st(v, "lat_p99_us")
                self.w(f"| {size_name(c.size)} | {c.topo} | {c.outstanding} | {v} | "
                       f"{span(ms, rate)} | {xr(ratio(med(ms), dm))} | "
                       f"{span(c.st(v, 'lat_p50_us'))} | {span(p99)} | "
                       f"{xr(ratio(med(p99), dp))} | {span(c.st(v, 'lat_p999_us'))} | "
                       f"{span(c.st(v, 'cpu_s_per_m'))} | {len(c.ok_runs(v))}/{len(c.runs[v])} |")
        self.w("")

    def hot(self, plot):
        cells = self.of_kind("hot")
        if not cells:
            return
        self.w("## Skew: one hot connection", "")
        if plot:
            self.w(f"![imbalance with a hot connection]({plot})", "")
        self.w("| size | conns x workers | hot | variant | msgs/s | x demux | imbalance | "
               "worker shares (median run) | intact runs |",
               "|---:|---|---:|---|---:|---:|---:|---|---:|")
        for c in cells:
            dm = med(c.st("demux", "msgs_per_s"))
            for v in self.variants:
                if v not in c.runs:
                    continue
                ms = c.st(v, "msgs_per_s")
                r = c.median_run(v, "imbalance")
                wm = (r or {}).get("worker_msgs") or []
                tot = sum(wm) or 1
                shares = " : ".join(f"{x / tot * 100:.0f}%" for x in wm) or "n/a"
                self.w(f"| {size_name(c.size)} | {c.topo} | {c.hot}% | {v} | {span(ms, rate)} | "
                       f"{xr(ratio(med(ms), dm))} | {span(c.st(v, 'imbalance'), pct)} | "
                       f"{shares} | {len(c.ok_runs(v))}/{len(c.runs[v])} |")
        self.w("")

    def stall(self, plot):
        cells = self.of_kind("stall")
        if not cells:
            return
        self.w("## A stalled worker", "")
        if plot:
            self.w(f"![stalled worker]({plot})", "")
        self.w("Peak kernel memory held by the receive path (sampled every 20 ms), in bytes, and "
               "the other workers' rate during the stall as a share of their rate before it.", "",
               "Socket memory is what `SO_MEMINFO` charges to the receive path's sockets; "
               "machine memory is the largest drop of `MemAvailable` during the run, which "
               "also sees what sockmap queues without charging it to a socket (and the "
               "demux's userspace backlog).", "",
               "| size | conns x workers | stall | variant | msgs/s (whole run) | peak socket "
               "memory, bytes: median | min-max | peak machine memory, bytes: median | "
               "others during / before | intact runs |",
               "|---:|---|---:|---|---:|---:|---|---:|---:|---:|")
        for c in cells:
            for v in self.variants:
                if v not in c.runs:
                    continue
                m = c.st(v, "peak_mem_bytes")
                mm = f"{m['med']:,.0f}" if m else "n/a"
                mr = f"{m['min']:,.0f}-{m['max']:,.0f}" if m else "n/a"
                sm = c.st(v, "peak_sys_mem_bytes")
                smm = f"{sm['med']:,.0f}" if sm else "n/a"
                self.w(f"| {size_name(c.size)} | {c.topo} | {c.stall} ms | {v} | "
                       f"{span(c.st(v, 'msgs_per_s'), rate)} | {mm} | {mr} | {smm} | "
                       f"{span(c.st(v, 'others_ratio'), pct)} | "
                       f"{len(c.ok_runs(v))}/{len(c.runs[v])} |")
        self.w("")

    def flow(self):
        self.w("## Flow control: stalled workers", "")
        runs = []
        if self.args.flow and os.path.exists(self.args.flow):
            for line in open(self.args.flow):
                try:
                    runs.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        if not runs:
            self.w("Not run (`--no-flow`), or flow_check gave no result.", "")
            return
        self.w("`flow_check` (tests/api/flow_check.c) in a network namespace of its own: 4 "
               "loopback transports flood pipelined 1 KiB messages into a mux with the default "
               "settings; one worker, or all, stop reading for the stall. Peak unread bytes per "
               "KCM socket by the mux's credits, peak memory charged to the KCM sockets "
               "(`SO_MEMINFO`) against the documented bound (docs/memory.md, "
               f"{self.args.mem_bound:,} B for 4 transports and 4 sockets), the other workers' "
               "rate during the stall against before, the senders' rate during it, the 20 ms "
               "samples in which no sender wrote, and the time back to 90% of the rate.", "",
               "| stall | workers | run | peak unread per socket, MiB | peak charged, MiB | "
               "within bound | others during / before | senders during / before | idle "
               "sender samples | back to 90%, ms | intact |",
               "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for r in runs:
            unread = max(r.get("peak_unread_per_worker") or [0]) / 1048576
            charged = (r.get("peak_charged") or 0) / 1048576
            ok = r.get("missing") == 0 and r.get("duplicates") == 0 and r.get("corrupt") == 0
            others = r.get("others_ratio")
            self.w(f"| {r.get('stall')} | {r.get('workers')} | {r.get('rep')} | {unread:.1f} | "
                   f"{charged:.1f} | {'yes' if (r.get('peak_charged') or 0) <= self.args.mem_bound else '**no**'} | "
                   f"{'-' if others is None else f'{others * 100:.0f}%'} | "
                   f"{(r.get('sender_ratio') or 0) * 100:.0f}% | "
                   f"{r.get('idle_sender_samples')}/{r.get('stall_samples')} | "
                   f"{r.get('recovery_ms', '?')} | {'yes' if ok else '**no**'} |")
        self.w("")

    def transmit(self, plot):
        self.w("## Transmit", "")
        if not self.tx:
            self.w("Not run (`--no-tx`), or tx_bench gave no report.", "")
            return
        t = self.tx
        self.w(f"`tx_bench`: {t.get('senders')} sender threads, {t.get('transports')} transports, "
               f"{t.get('runs')} run(s) per variant and cell, interleaved; kcm's atomic send "
               "(`kcm_send`), a plain sk_msg redirect (skmsg) and userspace writers with a "
               "mutex per transport (mutex). Method and interpretation: "
               "[transmit.md](transmit.md) (`scripts/bench-tx.sh`).", "")
        if plot:
            self.w(f"![transmit]({plot})", "")
        self.w("| body | SO_SNDBUF | variant | msgs/s | MB/s | CPU us/msg | runs not intact |",
               "|---:|---|---|---:|---:|---:|---:|")
        for cell in self.tx_cells():
            sb = "default" if cell["sndbuf"] == 0 else str(cell["sndbuf"])
            for v in cell.get("variants", []):
                ms = v["msgs_per_s"]
                st = {"med": ms["median"], "min": ms["min"], "max": ms["max"],
                      "n": len(v.get("runs", [])) or 1}
                self.w(f"| {cell['body']} B | {sb} | {v['name']} | {span(st, rate)} | "
                       f"{v['mb_per_s']['median']} | {v['cpu_us_per_msg']['median']} | "
                       f"{v.get('bad_runs', 0)}/{len(v.get('runs', []))} |")
        self.w("", "The plain sk_msg redirect is expected to corrupt streams under "
               "backpressure (KERNEL-NOTES, \"Transmit side\"): its runs that are not intact are "
               "the reason kcm exists, not a harness failure. Only kcm must be intact.", "")

    def correctness(self):
        self.w("## Correctness", "")
        runs = [(c, v, r) for c in self.cells for v, rs in c.runs.items() for r in rs]
        bad = [(c, v, r) for c, v, r in runs if r.get("ok") is not True]
        tot = {k: sum(r.get(k) or 0 for _, _, r in runs) for k in ("lost", "dup", "corrupt")}
        self.w(f"- receive: {len(runs)} runs, {len(runs) - len(bad)} intact; lost {tot['lost']}, "
               f"duplicated {tot['dup']}, corrupt {tot['corrupt']} messages in all.")
        if self.bad_lines:
            self.w(f"- {self.bad_lines} line(s) of results.jsonl were not JSON.")
        for c, v, r in bad:
            counts = (f"lost {r['lost']}, dup {r.get('dup')}, corrupt {r.get('corrupt')}; "
                      if r.get("lost") is not None else "")
            self.w(f"  - **{c.label} {v} run {r.get('rep', '?')}**: {counts}"
                   f"{r.get('error') or 'not ok'}")
        if self.tx:
            n = sum(len((self.tx_variant(c, "kcm") or {}).get("runs", [])) for c in self.tx_cells())
            state = "intact in every run" if self.tx.get("kcm_intact") else "**not intact**"
            self.w(f"- transmit: kcm {state} ({n} runs).")
        self.w("")

    # -- plots --

    def make_plots(self):
        outdir = self.args.plots or os.path.join(os.path.dirname(os.path.abspath(self.args.out)),
                                                 "bench")
        os.makedirs(outdir, exist_ok=True)
        rel = os.path.relpath(outdir, os.path.dirname(os.path.abspath(self.args.out)))
        p = Plotter(outdir, rel)
        res = {}
        try:
            fh = self.of_kind("firehose")
            res["msgs"] = plot_vs_size(p, "rx-msgs.png", fh, self.variants, "msgs_per_s",
                                       "msgs/s")
            res["bytes"] = plot_vs_size(p, "rx-bytes.png", fh, self.variants, "bytes_per_s",
                                        "MB/s", 1e-6)
            res["cpu"] = plot_vs_size(p, "rx-cpu.png", fh, self.variants, "cpu_s_per_m",
                                      "CPU-s per M msgs")
            groups = [(f"{size_name(c.size)} {c.topo} K={c.outstanding}",
                       {v: c.st(v, "lat_p99_us") for v in self.variants})
                      for c in sorted(self.of_kind("reqresp"),
                                      key=lambda c: (c.outstanding or 0, c.size, c.conns))]
            res["lat"] = plot_bars(p, "rx-latency.png", "request/response p99 latency", groups,
                                   self.variants, "p99 latency, us", log=True)
            groups = [(f"{size_name(c.size)} {c.topo}",
                       {v: scale_st(c.st(v, "imbalance"), 100) for v in self.variants})
                      for c in self.of_kind("hot")]
            res["hot"] = plot_bars(p, "rx-hot.png", "imbalance with one connection carrying "
                                   "90% of the messages", groups, self.variants, "imbalance, %")
            groups = [(f"{c.topo} {c.stall} ms",
                       {v: scale_st(c.st(v, "others_ratio"), 100) for v in self.variants})
                      for c in self.of_kind("stall")]
            res["stall"] = plot_bars(p, "rx-stall.png", "other workers' rate during a stall, "
                                     "% of before", groups, self.variants, "%")
            groups = [(f"{c.topo} {c.stall} ms",
                       {v: scale_st(c.st(v, "peak_mem_bytes"), 1 / 1048576)
                        for v in self.variants}) for c in self.of_kind("stall")]
            res["mem"] = plot_bars(p, "rx-stall-mem.png", "peak kernel memory during a stall",
                                   groups, self.variants, "MiB")
            if self.tx:
                groups = []
                for cell in self.tx_cells():
                    sb = "default" if cell["sndbuf"] == 0 else str(cell["sndbuf"])
                    vals = {}
                    for v in cell.get("variants", []):
                        m = v["msgs_per_s"]
                        vals[v["name"]] = {"med": m["median"], "min": m["min"], "max": m["max"]}
                    groups.append((f"{cell['body']} B {sb}", vals))
                names = []
                for cell in self.tx_cells():
                    for v in cell.get("variants", []):
                        if v["name"] not in names:
                            names.append(v["name"])
                res["tx"] = plot_bars(p, "tx.png", "transmit msgs/s by body size and SO_SNDBUF",
                                      groups, names, "msgs/s", log=True)
        finally:
            p.close()
        self.plots_made, self.plots_failed = p.made, p.failed
        return res

    def write(self):
        self.eval_targets()
        plots = self.make_plots()
        self.header()
        self.summary()
        self.targets_section()
        self.firehose([(plots.get("msgs"), "msgs/s by size"),
                       (plots.get("bytes"), "MB/s by size"),
                       (plots.get("cpu"), "CPU per million messages by size")])
        self.reqresp(plots.get("lat"))
        self.hot(plots.get("hot"))
        self.stall(None)
        for k, alt in (("stall", "others' rate during a stall"), ("mem", "peak kernel memory")):
            if plots.get(k):
                self.w(f"![{alt}]({plots[k]})", "")
        self.flow()
        self.transmit(plots.get("tx"))
        self.correctness()
        self.machine()
        self.method()
        if self.plots_failed:
            self.w("## Plots that failed", "")
            self.w(*(f"- {f}" for f in self.plots_failed))
            self.w("")
        self.w(f"Raw per-run figures: `{self.args.results}` (one rx_bench JSON line per run); "
               "the programs' progress: `stderr.log` next to it.")
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(self.out) + "\n")
        os.replace(tmp, self.args.out)
        print(f"bench_report: wrote {self.args.out} and {len(self.plots_made)} plot(s)",
              file=sys.stderr)
        for f in self.plots_failed:
            print(f"bench_report: failed to plot {f}", file=sys.stderr)
        return 1 if self.plots_failed else 0


def scale_st(st, k):
    if not st:
        return None
    return {"med": st["med"] * k, "min": st["min"] * k, "max": st["max"] * k, "n": st["n"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="results.jsonl from bench.sh")
    ap.add_argument("--meta", required=True, help="meta.json from bench.sh")
    ap.add_argument("--tx", help="tx_bench --json report")
    ap.add_argument("--flow", help="flow.jsonl from bench.sh (flow_check stall runs)")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--plots", help="folder for the PNGs (default: bench/ next to --out)")
    ap.add_argument("--mem-bound", type=int, default=64 << 20,
                    help="stalled worker: peak kernel memory counted as bounded (bytes)")
    args = ap.parse_args()
    if shutil.which("gnuplot") is None:
        die("needs gnuplot (Debian: gnuplot-nox)")
    for path in (args.results, args.meta):
        if not os.path.exists(path):
            die(f"failed to read {path}: no such file (run scripts/bench.sh first)")
    sys.exit(Report(args).write())


if __name__ == "__main__":
    main()
