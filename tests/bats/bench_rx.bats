#!/usr/bin/env bats
# scripts/bench.sh --quick: every rx_bench variant in every mode of the quick matrix, the
# transmit benchmark, the report and its plots, written to a temporary folder. Only
# correctness is asserted (every run intact, every variant ran); speed is reported by
# `make bench`, never asserted.
# shellcheck shell=bash

load helpers

setup() {
	require_root
	RX=$BUILD/tests/bench/rx_bench
	DIR=$BATS_TEST_TMPDIR
}

teardown() {
	common_teardown
}

# docs_state: what `make test` must never change.
docs_state() {
	stat -c '%n %Y %s' "$TOP"/docs/benchmarks.md "$TOP"/docs/bench/* 2>/dev/null || true
}

@test "bench.sh --quick: every variant in every mode, every run intact, report and plots" {
	[ -x "$RX" ] || skip "not built: make $RX"
	[ -x "$PROGS/tx_bench" ] || skip "not built: make build/tests/tx_bench"
	local status=0 docs_before
	docs_before=$(docs_state)
	DATA=$DIR OUT=$DIR/report/benchmarks.md "$TOP/scripts/bench.sh" --quick \
		2>"$DIR/progress" || status=$?
	cat "$DIR/progress"
	[ "$status" -eq 0 ]
	R=$DIR/results.jsonl
	# 8 cells x 6 variants, one run each
	jq -se 'length == 48' "$R"
	# each mode of the quick matrix ran every variant
	jq -se '[group_by(.kind + " " + (.outstanding // 0 | tostring))[] |
		{mode: (.[0].kind + " " + (.[0].outstanding // 0 | tostring)),
		 v: ([.[].variant] | unique)}]
		| (map(.mode) | sort) == ["firehose 0", "hot 0", "reqresp 1", "reqresp 16", "stall 0"]
		  and all(.v == ["demux", "direct", "kcm", "kcm-batch", "kcm-frame", "kcm-prog"])' "$R"
	# firehose cells cover every message size
	jq -se '[.[] | select(.kind == "firehose") | .size] | unique == [64, 1024, 16384, 262144]' "$R"
	# intact: nothing lost, duplicated or corrupted, no error, workers' counts add up
	jq -se 'all(.ok == true and .lost == 0 and .dup == 0 and .corrupt == 0 and .error == "" and
		.msgs > 0 and (.worker_msgs | length) == .workers)' "$R"
	jq -se 'all(select(.mode == "firehose") | (.worker_msgs | add) == .msgs)' "$R"
	# the measurements each mode is for were taken
	jq -se 'all(select(.kind == "reqresp") | .lat_p50_us != null and .lat_p99_us != null and
		.lat_p999_us != null)' "$R"
	jq -se 'all(select(.kind == "hot") | .hot_pct == 90)' "$R"
	jq -se 'all(select(.kind == "stall") | .stall_ms > 0 and .peak_mem_bytes != null and
		.others_ratio != null)' "$R"
	# transmit: kcm intact in every cell
	jq -e '.kcm_intact == true and (.cells | length) > 0' "$DIR/tx.json"
	# the report, its sections and at least one real PNG
	grep -q '^## Targets' "$DIR/report/benchmarks.md"
	grep -q '^- receive: 48 runs, 48 intact' "$DIR/report/benchmarks.md"
	# flow control's stall cells: one of 2, one of 4 and all of 4 workers, every run intact
	jq -se 'length == 3 and all(.result == "done" and .missing == 0 and .duplicates == 0 and
		.corrupt == 0)' "$DIR/flow.jsonl"
	grep -q '^## Flow control: stalled workers' "$DIR/report/benchmarks.md"
	grep -q '^## Transmit' "$DIR/report/benchmarks.md"
	local png n=0
	for png in "$DIR"/report/bench/*.png; do
		if [ "$(head -c 4 "$png" | tail -c 3)" = PNG ]; then n=$((n + 1)); fi
	done
	[ "$n" -ge 1 ]
	grep -q '](bench/rx-msgs.png)' "$DIR/report/benchmarks.md"
	[ -s "$DIR/report/bench/rx-msgs.png" ]
	# make test never rewrites docs/
	[ "$(docs_state)" = "$docs_before" ]
}

@test "bench.sh: a run that lost messages fails the benchmark and is named in the report" {
	# a stand-in rx_bench: every run reports one message lost
	cat >"$DIR/lossy" <<-'EOF'
		#!/bin/sh
		jq -cn '{variant: "kcm", mode: "firehose", size: 64, conns: 1, workers: 2,
			outstanding: 0, hot_pct: 0, stall_ms: 0, msgs: 9, bytes: 576, secs: 0.1,
			msgs_per_s: 90, bytes_per_s: 5760, cpu_s: 0.01, cpu_s_per_m: 1111,
			worker_msgs: [5, 4], imbalance: 0.2, lost: 1, dup: 0, corrupt: 0, ok: false,
			lat_p50_us: null, lat_p99_us: null, lat_p999_us: null, peak_mem_bytes: 0,
			others_ratio: null, error: ""}'
		exit 1
	EOF
	chmod +x "$DIR/lossy"
	RX_BENCH=$DIR/lossy DATA=$DIR OUT=$DIR/report.md run "$TOP/scripts/bench.sh" --quick \
		--no-tx --only 'firehose 64B' --variants kcm
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"FAIL: lost 1"* ]]
	[[ $output == *"1 of 1 runs were not intact"* ]]
	grep -q '^- receive: 1 runs, 0 intact; lost 1' "$DIR/report.md"
	grep -q 'firehose 64B 1x2 kcm run 1\*\*: lost 1' "$DIR/report.md"
}

@test "bench.sh: usage errors exit 2" {
	run "$TOP/scripts/bench.sh" --runs 0
	[ "$status" -eq 2 ]
	run "$TOP/scripts/bench.sh" --variants kcm,nope
	[ "$status" -eq 2 ]
	run "$TOP/scripts/bench.sh" --only 'no such cell'
	[ "$status" -eq 2 ]
}
