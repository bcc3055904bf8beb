#!/usr/bin/env bats
# tx_bench --quick: kcm, the plain sk_msg redirect and the naive mutex side by side. Only
# correctness is asserted (kcm intact in every cell, every variant ran); speed is
# reported by scripts/bench-tx.sh, never asserted.
# shellcheck shell=bash

load helpers

setup() {
	require_root
	[ -x "$PROGS/tx_bench" ] || skip "not built: make build/bench_skmsg.skel.h build/tests/tx_bench"
	OUT=$BATS_TEST_TMPDIR/tx_bench.json
}

teardown() {
	common_teardown
}

@test "tx_bench --quick: kcm intact in every cell, all three variants ran" {
	local status=0
	# progress goes to stderr: keep it apart from the one-line JSON report
	"$PROGS/tx_bench" --quick --json >"$OUT" 2>"$BATS_TEST_TMPDIR/progress" || status=$?
	cat "$BATS_TEST_TMPDIR/progress" "$OUT"
	[ "$status" -eq 0 ]
	# 3 sizes x 2 send buffers, one run each
	jq -e '.cells | length == 6' "$OUT"
	jq -e '[.cells[] | [.variants[].name] == ["kcm", "skmsg", "mutex"]] | all' "$OUT"
	jq -e '[.cells[].variants[].runs | length == 1] | all' "$OUT"
	jq -e '[.cells[].variants[] | .runs[] | .sent > 0] | all' "$OUT"
	jq -e '[.cells[] | .variants[] | select(.name == "kcm") |
		.corrupt == 0 and .interleaved == 0 and .missing == 0 and .duplicates == 0 and
		.reordered == 0 and .stalled_runs == 0 and .bad_runs == 0 and
		all(.runs[]; .sent == .received and .send_error == "" and .recv_error == "" and
			.recv_bytes == .sent_bytes)] | all' "$OUT"
	jq -e '.kcm_intact == true' "$OUT"
}
