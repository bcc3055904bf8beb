#!/usr/bin/env bash
# The test suite on several kernels: this machine's natively, and Debian's stock kernels
# booted in qemu (scripts/guest.sh), each guest seeing this tree through a read-only root.
# Prints each run's output, then one "N passed, N failed" line per kernel and a table.
#
#   scripts/test-kernels.sh [--suites "S1 S2..."] [--timeout SEC] [--repeat N] [KERNEL...]
#
#   KERNEL     native, or a Debian kernel: 5.10, 6.1, 6.1.0-50, 6.12 (default:
#              native 5.10 6.1 6.12; $KERNELS too)
#   --suites   only these bats suites (run-tests.sh SUITE...; $SUITES too); default all
#   --timeout  per guest, seconds (default 5400); a guest past it, or one that hangs or
#              panics, is reported with the last lines of its console
#   --repeat   run the whole matrix N times in a row (default 1; $REPEAT too): one row
#              per kernel and run, then per kernel how many runs passed and how many
#              guests hung or died (a rare kernel hang needs many runs to show)
#
# Logs: build/kernels/<kernel>.log (<kernel>.<run>.log with --repeat). Exit 0 when every
# kernel passed every run. Needs root.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

suites=${SUITES:-}
timeout=5400
repeat=${REPEAT:-1}
kernels=()
while [ $# -gt 0 ]; do
	case $1 in
	--suites) suites=${2:?--suites needs a list}; shift 2 ;;
	--timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
	--repeat) repeat=${2:?--repeat needs a count}; shift 2 ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "test-kernels: unknown option '$1'" >&2; exit 2 ;;
	*) kernels+=("$1"); shift ;;
	esac
done
[ ${#kernels[@]} -gt 0 ] || read -r -a kernels <<<"${KERNELS:-native 5.10 6.1 6.12}"
case $timeout in '' | *[!0-9]*) echo "test-kernels: invalid --timeout '$timeout'" >&2; exit 2 ;; esac
case $repeat in '' | 0 | *[!0-9]*) echo "test-kernels: invalid --repeat '$repeat'" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "test-kernels: needs root (BPF, namespaces, qemu)" >&2; exit 1; }
# the guests run this tree's build: without it every suite would only skip
[ -x build/kcm-loader ] && [ -f build/kcm.bpf.o ] ||
	{ echo "test-kernels: $top/build is not built: run make (make test-kernels builds)" >&2; exit 2; }

logdir=${BUILD:-$top/build}/kernels
mkdir -p "$logdir"
# shellcheck disable=SC2206
suite_args=($suites)

rows=()
status=0
declare -A runs_ok runs_hung
for ((run = 1; run <= repeat; run++)); do
	for k in "${kernels[@]}"; do
		log=$logdir/$k.log
		label=$k
		[ "$repeat" -eq 1 ] || { log=$logdir/$k.$run.log; label="$k, run $run of $repeat"; }
		echo "== kernel $label (log: $log)"
		start=$(date +%s)
		if [ "$k" = native ]; then
			scripts/run-tests.sh "${suite_args[@]}" 2>&1 | tee "$log"
			rc=${PIPESTATUS[0]}
			release=$(uname -r)
		else
			KCM_GUEST_TIMING=1 scripts/guest.sh run "$k" --timeout "$timeout" -- \
				scripts/run-tests.sh "${suite_args[@]}" 2>&1 | tee "$log"
			rc=${PIPESTATUS[0]}
			release=$(sed -n 's/^guest\.sh: kernel \([^:]*\): boot.*/\1/p' "$log" | tail -n 1)
		fi
		secs=$(($(date +%s) - start))
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
		skipped=$(sed -n 's/^\([0-9]*\) skipped$/\1/p' "$log" | tail -n 1)
		case $rc in
		0) verdict=ok ;;
		124) verdict="timed out after ${timeout}s" ;;
		125) verdict="guest died or hung (console in the log)" ;;
		2) verdict="setup failed (see the log)" ;;
		*) verdict=failed ;;
		esac
		[ "$rc" -eq 0 ] || status=1
		[ "$rc" -eq 0 ] && runs_ok[$k]=$((${runs_ok[$k]:-0} + 1))
		[ "$rc" -eq 125 ] && runs_hung[$k]=$((${runs_hung[$k]:-0} + 1))
		echo "kernel $k: ${line:-no result}"
		rows+=("$k|$run|${release:-?}|${line:-no result}|${skipped:-0}|${secs}s|$verdict")
	done
done

echo
echo "== kernel matrix${suites:+ (suites: $suites)}"
if [ "$repeat" -eq 1 ]; then
	printf '%-10s %-26s %-22s %-8s %-8s %s\n' kernel release result skipped time verdict
else
	printf '%-10s %-4s %-26s %-22s %-8s %-8s %s\n' kernel run release result skipped time verdict
fi
for r in "${rows[@]}"; do
	IFS='|' read -r k n rel res sk t v <<<"$r"
	if [ "$repeat" -eq 1 ]; then
		printf '%-10s %-26s %-22s %-8s %-8s %s\n' "$k" "$rel" "$res" "$sk" "$t" "$v"
	else
		printf '%-10s %-4s %-26s %-22s %-8s %-8s %s\n' "$k" "$n" "$rel" "$res" "$sk" "$t" "$v"
	fi
done
if [ "$repeat" -gt 1 ]; then
	echo
	for k in "${kernels[@]}"; do
		echo "kernel $k: ${runs_ok[$k]:-0} of $repeat runs passed, ${runs_hung[$k]:-0} guests hung or died"
	done
fi
exit $status
