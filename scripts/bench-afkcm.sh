#!/usr/bin/env bash
# kcm-bpf against the kernel's own AF_KCM: rx_bench's kcm, kcm-batch and afkcm variants,
# interleaved, in Debian's 6.1 kernel under qemu (this machine's kernel has no AF_KCM;
# Debian builds it as a module). The guest is emulated (TCG): only the ratios mean
# something. Prints each run's JSON line, then medians and ratios per cell.
#
#   scripts/bench-afkcm.sh [--reps N] [--kernel VERSION]    (default 5 reps, 6.1)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
reps=5 kernel=6.1
while [ $# -gt 0 ]; do
	case $1 in
	--reps) reps=${2:?--reps needs a number}; shift 2 ;;
	--kernel) kernel=${2:?--kernel needs a version}; shift 2 ;;
	-h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-afkcm: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done
case $reps in '' | *[!0-9]*) echo "bench-afkcm: invalid --reps '$reps'" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "bench-afkcm: needs root (BPF, qemu)" >&2; exit 1; }
rx=${BUILD:-$top/build}/tests/bench/rx_bench
[ -x "$rx" ] || { echo "bench-afkcm: $rx is missing: run make" >&2; exit 1; }
out=${BUILD:-$top/build}/bench/afkcm.jsonl
mkdir -p "$(dirname "$out")"

# Each cell runs its three variants back to back, so a busy host slows all three alike.
scripts/guest.sh run "$kernel" --timeout 3000 -- sh -c "
	modprobe kcm || { echo 'bench-afkcm: no kcm module in this kernel' >&2; exit 1; }
	for rep in \$(seq $reps); do
		for cell in 'firehose 64 --msgs 80000' 'firehose 1024 --msgs 40000' \
			    'reqresp 64 --outstanding 1 --seconds 2' \
			    'reqresp 1024 --outstanding 1 --seconds 2'; do
			set -- \$cell
			mode=\$1 size=\$2
			shift 2
			for v in kcm kcm-batch afkcm; do
				timeout -k 5 120 $rx --variant \$v --mode \$mode --size \$size \
					--conns 4 --workers 2 \"\$@\" || echo '{\"error\":\"run failed\"}'
			done
		done
	done
	dmesg | grep -E 'WARNING:|BUG:|lockup' >&2 || true" | tee "$out"

echo "== medians of $reps (msgs/s; reqresp: p50 latency), 4 connections x 2 workers, $kernel guest"
jq -rs '
	[.[] | select(.variant)] | group_by([.mode, .size])[] |
	(map(select(.ok)) | group_by(.variant) |
	 map({key: .[0].variant, value: {r: (map(.msgs_per_s) | sort | .[length / 2 | floor]),
	      p50: (map(.lat_p50_us // 0) | sort | .[length / 2 | floor])}}) | from_entries) as $m |
	"\(.[0].mode) \(.[0].size) B: kcm \($m.kcm.r | floor), kcm-batch \($m["kcm-batch"].r | floor), " +
	"afkcm \($m.afkcm.r | floor); kcm/afkcm \(($m.kcm.r / $m.afkcm.r * 100 | floor) / 100), " +
	"kcm-batch/afkcm \(($m["kcm-batch"].r / $m.afkcm.r * 100 | floor) / 100)" +
	(if .[0].mode == "reqresp" then "; p50 us kcm \($m.kcm.p50 | floor), afkcm \($m.afkcm.p50 | floor)" else "" end)
' "$out"
