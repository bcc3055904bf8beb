#!/usr/bin/env bash
# Receive and transmit benchmarks: run the matrix with rx_bench (kcm, kcm-batch, kcm-frame,
# kcm-prog, demux, direct; every cell R times, variants interleaved), flow control's stall
# cells with flow_check (one of 2, one of 4 and all of 4 workers stalled), tx_bench once,
# and write docs/benchmarks.md with its plots in docs/bench/ (scripts/bench_report.py).
#
#   scripts/bench.sh [--quick] [--runs R] [--only REGEX] [--variants LIST] [--no-tx]
#                    [--report-only]
#
#   --quick        every variant once at small counts over a reduced matrix that still
#                  covers every mode; the report goes to build/bench/quick/ (not docs/)
#   --runs R       runs per variant and cell (default 5; QUICK: 1)
#   --only REGEX   only the cells whose label matches (labels: "firehose 1024B 4x2",
#                  "reqresp K=16 64B 16x4", "hot 90% 1024B 4x2", "stall 2000ms 1024B 4x2")
#   --variants L   comma-separated subset of kcm,kcm-batch,kcm-frame,kcm-prog,demux,direct
#   --no-tx        skip the transmit benchmark
#   --no-flow      skip the flow-control stall cells
#   --report-only  write the report again from the results of the last run (no root)
#
# Environment: QUICK=1 (as --quick), RUNS, OUT (report path), DATA (folder for
# results.jsonl, meta.json, tx.json and the programs' stderr; default build/bench or
# build/bench/quick), SCALE (multiplies message counts and seconds), RX_BENCH, TX_BENCH
# (programs to run), RUN_TIMEOUT (seconds a run may take beyond its --seconds before it
# is killed and counted as failed; default 240), MEM_BOUND (bytes of kernel memory a
# stalled worker may pin and still count as bounded; default 64 MiB).
# Needs root, jq, gnuplot, python3.
# Exit status: 0 every run intact, 1 a run lost, duplicated or corrupted messages (or
# failed), 2 usage error. Speed never fails the script.
set -euo pipefail
trap 'echo "bench: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=${BUILD:-build}

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

quick=${QUICK:-}
[ "$quick" = 0 ] && quick=
runs=${RUNS:-}
only=
variants="kcm kcm-batch kcm-frame kcm-prog demux direct"
do_tx=1
do_flow=1
report_only=
cmdline="scripts/bench.sh${*:+ $*}"
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; shift ;;
	--runs) runs=${2:?}; shift 2 ;;
	--only) only=${2:?}; shift 2 ;;
	--variants) variants=${2:?}; variants=${variants//,/ }; shift 2 ;;
	--no-tx) do_tx=; shift ;;
	--no-flow) do_flow=; shift ;;
	--report-only) report_only=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "bench: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done
[ -n "$quick" ] && cmdline="QUICK=1 $cmdline"
for v in $variants; do
	case $v in
	kcm|kcm-batch|kcm-frame|kcm-prog|demux|direct) ;;
	*) echo "bench: unknown variant '$v' (kcm, kcm-batch, kcm-frame, kcm-prog, demux," \
		"direct)" >&2; exit 2 ;;
	esac
done
runs=${runs:-$([ -n "$quick" ] && echo 1 || echo 5)}
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
	echo "bench: --runs wants a positive integer, not '$runs'" >&2
	exit 2
fi
scale=${SCALE:-1}
if ! [[ $scale =~ ^[0-9]*\.?[0-9]+$ ]]; then
	echo "bench: SCALE wants a number, not '$scale'" >&2
	exit 2
fi
[ "$scale" = 1 ] || cmdline="SCALE=$scale $cmdline"

if [ -n "$quick" ]; then
	data=${DATA:-$build/bench/quick}
	out=${OUT:-$data/benchmarks.md}
else
	data=${DATA:-$build/bench}
	out=${OUT:-docs/benchmarks.md}
fi
results=$data/results.jsonl
meta=$data/meta.json
txjson=$data/tx.json
python=$(command -v /usr/bin/python3 || command -v python3 || true)

for t in jq gnuplot; do
	command -v "$t" >/dev/null ||
		{ echo "bench: needs $t: run scripts/install-deps.sh (Debian: $t${t/gnuplot/-nox})" >&2; exit 1; }
done
[ -n "$python" ] || { echo "bench: needs python3: run scripts/install-deps.sh" >&2; exit 1; }
report() {
	local txa=()
	[ -s "$txjson" ] && txa=(--tx "$txjson")
	[ -s "$data/flow.jsonl" ] && txa+=(--flow "$data/flow.jsonl")
	"$python" scripts/bench_report.py --results "$results" --meta "$meta" "${txa[@]}" --out "$out" \
		${MEM_BOUND:+--mem-bound "$MEM_BOUND"}
}

if [ -n "$report_only" ]; then
	if [ ! -s "$results" ] || [ ! -s "$meta" ]; then
		echo "bench: no results in $data: run scripts/bench.sh first" >&2
		exit 1
	fi
	report
	exit 0
fi

# ---- the matrix: "kind size conns workers rx_bench-arguments" per cell ----
# sc SECONDS, cnt MESSAGES: times SCALE
sc() { awk -v n="$1" -v s="$scale" 'BEGIN { printf "%g\n", n * s }'; }
cnt() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s); print (v < 1 ? 1 : v) }'; }
cells=()
if [ -n "$quick" ]; then
	# each size and each topology once, both latency depths, the hot connection, a stall
	cells+=("firehose 64 1 2 --msgs $(cnt 20000)"
		"firehose 1024 4 2 --msgs $(cnt 20000)"
		"firehose 16384 16 4 --msgs $(cnt 4000)"
		"firehose 262144 64 4 --msgs $(cnt 512)"
		"reqresp 1024 4 2 --outstanding 1 --seconds $(sc 0.5)"
		"reqresp 1024 4 2 --outstanding 16 --seconds $(sc 0.5)"
		"hot 1024 4 2 --hot 90 --msgs $(cnt 20000)"
		"stall 1024 4 2 --stall-ms 300 --seconds $(sc 1)")
	tx_args=(--quick)
else
	declare -A fh_msgs=([64]=2000000 [1024]=1000000 [16384]=200000 [262144]=16000)
	for size in 64 1024 16384 262144; do
		for topo in "1 2" "4 2" "16 4" "64 4"; do
			cells+=("firehose $size $topo --msgs $(cnt "${fh_msgs[$size]}")")
		done
	done
	for k in 1 16; do
		for size in 64 1024 16384; do
			for topo in "4 2" "16 4"; do
				cells+=("reqresp $size $topo --outstanding $k --seconds $(sc 2)")
			done
		done
	done
	for size in 64 1024; do
		for topo in "4 2" "16 4"; do
			cells+=("hot $size $topo --hot 90 --msgs $(cnt "${fh_msgs[$size]}")")
		done
	done
	# a timed firehose: worker 0 stops 0.5 s in, for 2 s; the senders go on for 4 s
	for topo in "4 2" "16 4"; do
		cells+=("stall 1024 $topo --stall-ms 2000 --seconds $(sc 4)")
	done
	tx_args=()
fi

label() { # label KIND SIZE CONNS WORKERS ARGS...: the cell's name in progress and --only
	local kind=$1 size=$2 topo=$3x$4 arg
	shift 4
	case $kind in
	reqresp) while [ $# -gt 0 ]; do [ "$1" = --outstanding ] && kind="reqresp K=$2"; shift; done ;;
	hot) while [ $# -gt 0 ]; do [ "$1" = --hot ] && kind="hot $2%"; shift; done ;;
	stall) while [ $# -gt 0 ]; do [ "$1" = --stall-ms ] && kind="stall ${2}ms"; shift; done ;;
	esac
	arg="$kind ${size}B $topo"
	echo "$arg"
}

selected=()
for c in "${cells[@]}"; do
	# shellcheck disable=SC2086
	l=$(label $c)
	if [ -z "$only" ] || [[ $l =~ $only ]]; then
		selected+=("$c")
	fi
done
[ ${#selected[@]} -gt 0 ] || { echo "bench: --only '$only' matches no cell" >&2; exit 2; }
nvar=$(wc -w <<<"$variants")
total=$(( ${#selected[@]} * runs * nvar ))

[ "$(id -u)" -eq 0 ] ||
	{ echo "bench: needs root (BPF programs and sockmaps); try: sudo make bench" >&2; exit 1; }
rx=${RX_BENCH:-$build/tests/bench/rx_bench}
txb=${TX_BENCH:-$build/tests/tx_bench}
[ -x "$rx" ] || { echo "bench: $rx is missing: run make" >&2; exit 1; }
[ -z "$do_tx" ] || [ -x "$txb" ] || { echo "bench: $txb is missing: run make" >&2; exit 1; }

# ---- machine, settings, leftovers ----
count_progs() { bpftool prog show 2>/dev/null | grep -cE ' (sk_skb|sk_msg|sock_ops) ' || true; }
count_maps() { bpftool map show 2>/dev/null | grep -cE ' (sockmap|sockhash) ' || true; }
list_pins() {
	[ ! -d /sys/fs/bpf/kcm ] || find /sys/fs/bpf/kcm -mindepth 1 -maxdepth 1 -printf '%f\n' | sort
}
sysctl_json() {
	local k args=()
	for k in net.core.rmem_max net.core.wmem_max net.core.rmem_default net.core.wmem_default \
		net.ipv4.tcp_rmem net.ipv4.tcp_wmem net.core.optmem_max; do
		args+=(--arg "$k" "$(sysctl -n "$k" 2>/dev/null | tr -s '\t ' ' ' || echo unknown)")
	done
	jq -n '$ARGS.named' "${args[@]}"
}
gov=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo "not exposed")

mkdir -p "$data" "$(dirname "$out")"
: >"$results"
rm -f "$txjson"
log=$data/stderr.log
: >"$log"
progs_before=$(count_progs) maps_before=$(count_maps) pins_before=$(list_pins)
t_start=$(date +%s)
cat /proc/loadavg >"$data/.load0"

tmp=$(mktemp -d /tmp/kcm-bench.XXXXXX)
# shellcheck disable=SC2317 # called by the trap
cleanup() { rm -rf "$tmp"; rm -f "$data/.load0"; }
trap cleanup EXIT
trap 'echo; echo "bench: interrupted; partial results in $results" >&2; exit 130' INT TERM

fmt_time() {
	if [ "$1" -ge 60 ]; then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi
}

# run_one LABEL KIND VARIANT REP SEQ SIZE CONNS WORKERS ARGS...: one rx_bench run, one line added
# to results.jsonl (a failed line made up when rx_bench printed none).
bad=0
run_one() {
	local cell=$1 kind=$2 variant=$3 rep=$4 seq=$5 size=$6 conns=$7 workers=$8 mode=firehose
	shift 8
	local limit=${RUN_TIMEOUT:-240} a line rc=0 secs=0 args=("$@")
	[ "$kind" = reqresp ] && mode=reqresp
	for ((a = 0; a < ${#args[@]}; a++)); do
		[ "${args[a]}" = --seconds ] && secs=${args[a + 1]%.*}
	done
	limit=$((limit + ${secs:-0}))
	echo "== [$seq/$total] $cell $variant run $rep: $rx --variant $variant --mode $mode" \
		"--size $size --conns $conns --workers $workers ${args[*]}" >>"$log"
	timeout --foreground -k 5 "$limit" "$rx" --variant "$variant" --mode "$mode" --size "$size" \
		--conns "$conns" --workers "$workers" "${args[@]}" --json \
		>"$tmp/out" 2>"$tmp/err" || rc=$?
	cat "$tmp/err" >>"$log"
	line=$(grep -m1 '^{' "$tmp/out" || true)
	if [ -n "$line" ] && jq -e . >/dev/null 2>&1 <<<"$line"; then
		# trust the line, but a non-zero exit is never an intact run
		line=$(jq -c --argjson rc "$rc" 'if $rc != 0 then .ok = false |
			.error = (if (.error // "") == "" then "exit status \($rc)" else .error end)
			else . end' <<<"$line")
	else
		local why="exit status $rc, no JSON line"
		[ "$rc" = 124 ] && why="timed out after ${limit}s"
		why="$why: $(tail -n 2 "$tmp/err" | tr '\n' ' ' | cut -c1-200 | sed 's/ *$//')"
		line=$(jq -cn --arg v "$variant" --arg m "$mode" --argjson s "$size" \
			--argjson c "$conns" --argjson w "$workers" --arg e "$why" \
			'{variant: $v, mode: $m, size: $s, conns: $c, workers: $w, ok: false, error: $e}')
	fi
	jq -c --arg cell "$cell" --arg kind "$kind" --argjson rep "$rep" --argjson seq "$seq" \
		'. + {cell: $cell, kind: $kind, rep: $rep, seq: $seq}' <<<"$line" >>"$results"
	LAST=$line
}

echo "bench: $total runs (${#selected[@]} cells x $nvar variants x $runs), into $results" >&2
# the progress line's figures for one run
summary_jq='
def r: if . == null then "?" elif . >= 1e6 then "\(. / 1e4 | floor / 100) M"
	elif . >= 1e3 then "\(. / 100 | floor / 10) k" else "\(. | floor)" end;
"\(.msgs_per_s | r) msgs/s"
+ (if .lat_p99_us != null then ", p99 \(.lat_p99_us) us" else "" end)
+ (if (.stall_ms // 0) > 0 then ", others \(.others_ratio // "?"), peak "
	+ "\((.peak_mem_bytes // 0) / 1048576 * 10 | floor / 10) MiB" else "" end)
+ (if .ok then "" else "  FAIL: " + (if .lost != null
	then "lost \(.lost) dup \(.dup) corrupt \(.corrupt); " else "" end) + (.error // "") end)'
seq=0
for c in "${selected[@]}"; do
	# shellcheck disable=SC2086
	set -- $c
	l=$(label "$@")
	for ((rep = 1; rep <= runs; rep++)); do
		for v in $variants; do
			seq=$((seq + 1))
			run_one "$l" "$1" "$v" "$rep" "$seq" "$2" "$3" "$4" "${@:5}"
			summary=$(jq -r "$summary_jq" <<<"$LAST")
			jq -e .ok >/dev/null <<<"$LAST" || bad=$((bad + 1))
			el=$(( $(date +%s) - t_start ))
			left=$(( el * (total - seq) / seq ))
			printf '[%d/%d] %s %s run %d/%d ... %s  (%s, ~%s left)\n' "$seq" "$total" "$l" "$v" \
				"$rep" "$runs" "$summary" "$(fmt_time $el)" "$(fmt_time $left)" >&2
		done
	done
done

# ---- flow control: stall cells (flow_check; its JSON lines go to flow.jsonl) ----
flow_status=0
flowjson=$data/flow.jsonl
: >"$flowjson"
if [ -n "$do_flow" ]; then
	fc=${FLOW_CHECK:-$build/tests/flow_check}
	flow_ms=$([ -n "$quick" ] && echo 300 || echo 2000)
	for cfg in "one 2" "one 4" "all 4"; do
		# shellcheck disable=SC2086
		set -- $cfg
		for ((rep = 1; rep <= runs; rep++)); do
			echo "== flow: $fc stall --stall $1 --workers $2 --conns 4 --stall-ms $flow_ms" >>"$log"
			line=$(timeout --foreground -k 5 120 unshare -n sh -c 'ip link set lo up && exec "$@"' \
				sh "$fc" stall --stall "$1" --workers "$2" --conns 4 --stall-ms "$flow_ms" \
				--max-inflight $((256 << 20)) --timeout 60 --json 2>>"$log" | grep -m1 '^{' ||
				true)
			if [ -z "$line" ] || ! jq -e '.result == "done" and .missing == 0 and
				.duplicates == 0 and .corrupt == 0' >/dev/null 2>&1 <<<"$line"; then
				flow_status=1
				echo "bench: flow stall $1 of $2 run $rep failed or lost messages" >&2
			fi
			[ -z "$line" ] || jq -c --argjson rep "$rep" '. + {rep: $rep}' <<<"$line" >>"$flowjson"
			printf 'flow: stall %s of %s workers run %d/%d ... %s\n' "$1" "$2" "$rep" "$runs" \
				"$(jq -r '"peak unread \((.peak_unread_per_worker | max) / 1048576 * 10 |
				floor / 10) MiB, charged \(.peak_charged / 1048576 | floor) MiB, others \(
				.others_ratio // "-"), back in \(.recovery_ms // "?") ms"' <<<"${line:-{\}}" \
				2>/dev/null)" >&2
		done
	done
fi

tx_status=0
if [ -n "$do_tx" ]; then
	echo "bench: transmit: $txb ${tx_args[*]} --json (progress in $log)" >&2
	echo "== tx_bench ${tx_args[*]} --json" >>"$log"
	timeout --foreground -k 5 1800 "$txb" "${tx_args[@]}" --json >"$txjson" 2>>"$log" || tx_status=$?
	if [ ! -s "$txjson" ] || ! jq -e .cells >/dev/null 2>&1 <"$txjson"; then
		echo "bench: tx_bench produced no report (exit $tx_status); see $log" >&2
		rm -f "$txjson"
		tx_status=1
	elif ! jq -e '.kcm_intact == true' >/dev/null <"$txjson"; then
		echo "bench: tx_bench: kcm was not intact in every run (see $txjson)" >&2
		tx_status=1
	else
		tx_status=0
	fi
fi

# The kernel frees sockmaps and their programs from a work queue: allow it a moment.
for _ in $(seq 50); do
	[ "$(count_progs)" -le "$progs_before" ] && [ "$(count_maps)" -le "$maps_before" ] && break
	sleep 0.1
done
leftovers=()
[ "$(count_progs)" -le "$progs_before" ] ||
	leftovers+=("sk_skb/sk_msg/sock_ops programs: $progs_before before, $(count_progs) after")
[ "$(count_maps)" -le "$maps_before" ] ||
	leftovers+=("sockmaps: $maps_before before, $(count_maps) after")
[ "$(list_pins)" = "$pins_before" ] ||
	leftovers+=("new pins under /sys/fs/bpf/kcm:" \
		"$(comm -13 <(echo "$pins_before") <(list_pins) | tr '\n' ' ')")
for l in "${leftovers[@]}"; do
	echo "bench: left behind (other programs on this machine may be the cause): $l" >&2
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null)" ] || rev="$rev (uncommitted changes)"
printf '%s\n' "${selected[@]}" | jq -R . | jq -s . >"$tmp/cells"
printf '%s\n' "${leftovers[@]+"${leftovers[@]}"}" | jq -R 'select(. != "")' | jq -s . >"$tmp/left"
jq -n --arg kernel "$(uname -r)" --arg cpu "${cpu:-unknown}" --argjson ncpu "$(nproc)" \
	--arg start "$(date -u -d "@$t_start" '+%Y-%m-%d %H:%M UTC')" \
	--argjson elapsed "$(( $(date +%s) - t_start ))" --arg command "$cmdline" \
	--argjson quick "$([ -n "$quick" ] && echo true || echo false)" --argjson runs "$runs" \
	--arg variants "$variants" --arg scale "$scale" --arg rev "$rev" --arg gov "$gov" \
	--arg load0 "$(cut -d' ' -f1-3 "$data/.load0")" --arg load1 "$(cut -d' ' -f1-3 /proc/loadavg)" \
	--arg rx "$rx" --arg tx "$([ -n "$do_tx" ] && echo "$txb ${tx_args[*]} --json" || echo "")" \
	--argjson tx_status "$tx_status" --argjson sysctl "$(sysctl_json)" \
	--slurpfile cells "$tmp/cells" --slurpfile left "$tmp/left" \
	'{kernel: $kernel, cpu_model: $cpu, ncpu: $ncpu, start: $start, elapsed_s: $elapsed,
	  command: $command, quick: $quick, runs: $runs, variants: ($variants | split(" ")),
	  scale: $scale, git: $rev, governor: $gov, loadavg_start: $load0, loadavg_end: $load1,
	  rx_bench: $rx, tx_bench: $tx, tx_status: $tx_status, sysctl: $sysctl,
	  cells: $cells[0], leftovers: $left[0]}' >"$meta"

status=0
report || { echo "bench: the report is incomplete (see above)" >&2; status=1; }
if [ "$bad" -gt 0 ]; then
	echo "bench: $bad of $total runs were not intact" \
		"(lost, duplicated or corrupt messages, or failed)" >&2
	status=1
fi
[ "$tx_status" -eq 0 ] || status=1
[ "$flow_status" -eq 0 ] || status=1
[ $status -eq 0 ] && echo "bench: all $total receive runs intact${do_tx:+, transmit intact}" >&2
exit $status
