#!/usr/bin/env bats
# Transmit atomicity under backpressure: tx_stress sends mixed-size messages from several
# threads through transports with a 4 KiB send buffer; the peers re-split each stream and
# check every message. Asserts on its JSON report (jq).
# shellcheck shell=bash

load helpers

setup() {
	require_root
	OUT=$BATS_TEST_TMPDIR/tx.json
}

teardown() {
	common_teardown
}

# tx_run ARGS...: run tx_stress --json, keep its report in $OUT and show it on failure.
tx_run() {
	run "$PROGS/tx_stress" --json "$@"
	echo "$output"
	grep '^{' <<<"$output" | tail -n1 >"$OUT"
}

# tx_intact COUNT: nothing corrupt, interleaved, partial, missing or doubled; all arrived.
tx_intact() {
	jq -e --argjson n "$1" '
		.corrupt == 0 and .interleaved == 0 and .desync == 0 and .partial == 0 and
		.missing == 0 and .duplicates == 0 and .stalled == false and
		.send_error == "" and .recv_error == "" and
		.sent == $n and .received == .sent and .bytes == .sent_bytes' "$OUT"
}

@test "4 senders, 2 transports, SO_SNDBUF 4096: 100000 mixed messages intact (blocking)" {
	tx_run --senders 4 --transports 2 --sndbuf 4096 --count 100000
	[ "$status" -eq 0 ]
	tx_intact 100000
	jq -e '.nonblock == false and .sndbuf == 4096' "$OUT"
}

@test "4 senders, 2 transports, SO_SNDBUF 4096: 100000 mixed messages intact (nonblocking)" {
	tx_run --senders 4 --transports 2 --sndbuf 4096 --count 100000 --nonblock
	[ "$status" -eq 0 ]
	tx_intact 100000
	jq -e '.nonblock == true' "$OUT"
}

@test "default send buffer: 100000 mixed messages intact" {
	tx_run --senders 4 --transports 2 --sndbuf 0 --count 100000
	[ "$status" -eq 0 ]
	tx_intact 100000
}

@test "the checker catches interleaving: raw unlocked writes fail the run" {
	tx_run --senders 4 --transports 2 --sndbuf 4096 --count 20000 --bypass-lib
	[ "$status" -eq 1 ]
	jq -e '.bypass_lib == true and .corrupt > 0' "$OUT"
}
