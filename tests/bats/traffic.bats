#!/usr/bin/env bats
# Real traffic through a veth pair: kcm_server in NS_S, kcm_client in NS_C. Every test
# asserts what the server (JSON, read with jq) or the client observed.
# shellcheck shell=bash disable=SC2030,SC2031

load helpers

PORT=7100

setup() {
	require_root
	netns_setup
	MUX=kcmt-traffic-$$-$BATS_SUITE_TEST_NUMBER
	READY=$BATS_TEST_TMPDIR/ready
	ATTACHED=$BATS_TEST_TMPDIR/attached
	OUT=$BATS_TEST_TMPDIR/server.json
	ERR=$BATS_TEST_TMPDIR/server.err
}

teardown() {
	common_teardown
}

# Background programs run under nsenter directly, not through in_server/in_client: a
# backgrounded shell function is a subshell, and killing it would orphan the program.

# start_server ARGS...: kcm_server in NS_S (pinned as $MUX), ready when this returns.
# KCM_TRAFFIC_PARSER=OBJ runs every case through a parser program instead of the
# built-in length prefix (scripts/run-tests.sh does, with the shipped Thrift parser), and
# KCM_TRAFFIC_SPLIT=NAME with that parser's user-space build splitting batches.
start_server() {
	bg_run nsenter --net=/run/netns/"$NS_S" "$PROGS/kcm_server" --listen "$IP_S:$PORT" --pin "$MUX" \
		--ready-file "$READY" --attached-file "$ATTACHED" --json \
		${KCM_TRAFFIC_PARSER:+--prog "$KCM_TRAFFIC_PARSER"} \
		${KCM_TRAFFIC_SPLIT:+--split "$KCM_TRAFFIC_SPLIT"} "$@" >"$OUT" 2>"$ERR"
	SERVER_PID=$BG_PID
	wait_for_file "$READY" 10
}

# client ARGS...: kcm_client in NS_C; sends once the server attached all its connections.
client() {
	in_client "$PROGS/kcm_client" --connect "$IP_S:$PORT" --start-file "$ATTACHED" "$@"
}

# bg_client ARGS...: client in the background; its pid in BG_PID.
bg_client() {
	bg_run nsenter --net=/run/netns/"$NS_C" "$PROGS/kcm_client" --connect "$IP_S:$PORT" "$@"
}

# finish_server [WANT_RC]: wait for the server (bounded by its --timeout), check its exit
# status, that its output is one JSON object, and that it removed its pins.
finish_server() {
	local rc=0
	wait "$SERVER_PID" || rc=$?
	echo "server exit $rc: $(cat "$OUT")"
	cat "$ERR"
	[ "$rc" -eq "${1:-0}" ]
	jq -e 'type == "object"' "$OUT" >/dev/null
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ] || { echo "pin $MUX left behind"; return 1; }
}

# j FILTER: a value from the server's JSON summary.
j() { jq -r "$1" "$OUT"; }

# expect_eq WHAT WANT GOT
expect_eq() {
	[ "$2" = "$3" ] || { echo "$1: expected $2, got $3"; return 1; }
}

# assert_verified TOTAL: every message arrived once, intact and in order per worker.
assert_verified() {
	expect_eq messages "$1" "$(j .messages)"
	expect_eq corrupt 0 "$(j .corrupt)"
	expect_eq duplicate 0 "$(j .duplicate)"
	expect_eq missing 0 "$(j .missing)"
	expect_eq out_of_order 0 "$(j .out_of_order)"
	expect_eq "sum of worker messages" "$1" "$(j '[.workers[].messages] | add')"
	expect_eq "sum of worker bytes" "$(j .bytes)" "$(j '[.workers[].bytes] | add')"
	expect_eq verified true "$(j .verified)"
}

# assert_spread WANT SLACK: every worker's message count within WANT +- SLACK.
assert_spread() {
	local c
	for c in $(j '.workers[].messages'); do
		[ "$c" -ge $(($1 - $2)) ] && [ "$c" -le $(($1 + $2)) ] ||
			{ echo "worker got $c messages, want $1 +- $2: $(jq -c .workers "$OUT")"; return 1; }
	done
}

# Strict per-message balance: one message per redirect and a flow-control window that never
# binds (with the defaults a worker that falls behind is passed over, by design).
STRICT=(--batch 1 --rx-window 1073741824)

pipeline_case() {
	local w=$1
	start_server --workers "$w" --conns 2 --expect 40000 --per-conn 20000 "${STRICT[@]}"
	run client --conns 2 --count 20000 --size 12:300 --mode pipeline --json
	echo "$output"
	[ "$status" -eq 0 ]
	finish_server
	assert_verified 40000
	expect_eq "bytes received" "$(echo "$output" | jq .bytes)" "$(j .bytes)"
	assert_spread $((40000 / w)) 1
}

@test "pipelined writes of many messages on 1 KCM socket arrive intact and in order" {
	pipeline_case 1
}

@test "pipelined writes of many messages on 2 KCM sockets arrive intact and in order" {
	pipeline_case 2
}

@test "pipelined writes of many messages on 4 KCM sockets arrive intact and in order" {
	pipeline_case 4
}

trickle_case() {
	start_server --workers "$1" --conns 2 --expect 60 --per-conn 30
	run client --conns 2 --count 30 --size 12:200 --mode trickle
	echo "$output"
	[ "$status" -eq 0 ]
	finish_server
	assert_verified 60
}

@test "messages trickled one byte per write on 1 KCM socket arrive whole" {
	trickle_case 1
}

@test "messages trickled one byte per write on 2 KCM sockets arrive whole" {
	trickle_case 2
}

@test "messages trickled one byte per write on 4 KCM sockets arrive whole" {
	trickle_case 4
}

@test "message bodies from 1 byte to 1 MiB arrive intact" {
	local mixed tiny
	start_server --workers 2 --conns 3 --expect 208 --max 1100000 --timeout $((30 * SCALE))
	bg_client --start-file "$ATTACHED" --conn-base 0 --count 150 --size 1:1048576 \
		--size-dist log --seed 7
	mixed=$BG_PID
	bg_client --start-file "$ATTACHED" --conn-base 1 --count 50 --size 1 --mode each
	tiny=$BG_PID
	run client --conn-base 2 --count 8 --size 1048576
	echo "$output"
	[ "$status" -eq 0 ]
	wait "$mixed"
	wait "$tiny"
	finish_server
	assert_verified 208
}

@test "a frame over the maximum fails its transport with EMSGSIZE; another carries on" {
	start_server --workers 2 --conns 2 --expect 5000 --expect-errors 1
	bg_client --start-file "$ATTACHED" --count 0 --oversize --hold 60
	run client --conn-base 1 --count 5000 --mode each
	echo "$output"
	[ "$status" -eq 0 ]
	finish_server
	expect_eq "transport errors" 1 "$(j '.transport_errors | length')"
	expect_eq so_error 90 "$(j '.transport_errors[0].so_error')"
	expect_eq error "Message too long" "$(j '.transport_errors[0].error')"
	assert_verified 5000
}

@test "a stalled half message fails its transport with ETIMEDOUT under SO_RCVTIMEO" {
	local t0=$SECONDS
	start_server --workers 2 --conns 1 --rcvtimeo 1000 --expect 3 --expect-errors 1 --timeout $((10 * SCALE))
	bg_client --start-file "$ATTACHED" --count 3 --stall 10 --hold 60
	finish_server
	expect_eq "transport errors" 1 "$(j '.transport_errors | length')"
	expect_eq so_error 110 "$(j '.transport_errors[0].so_error')"
	assert_verified 3
	[ $((SECONDS - t0)) -ge 1 ] || { echo "timed out before SO_RCVTIMEO (1 s)"; return 1; }
}

@test "round-robin: 10000 messages from one connection over 4 KCM sockets, 2500 each" {
	start_server --workers 4 --conns 1 --expect 10000 --per-conn 10000 "${STRICT[@]}"
	run client --count 10000 --size 12:64
	echo "$output"
	[ "$status" -eq 0 ]
	finish_server
	assert_verified 10000
	assert_spread 2500 1
}

@test "batching 16 messages per redirect keeps totals exact and workers within 32" {
	[ -z "${KCM_TRAFFIC_PARSER:-}" ] || [ -n "${KCM_TRAFFIC_SPLIT:-}" ] ||
		skip "parser programs without a splitter deliver one message per redirect"
	start_server --workers 4 --batch 16 --rx-window 1073741824 --conns 2 --expect 40000 \
		--per-conn 20000
	run client --conns 2 --count 20000 --size 12:100
	echo "$output"
	[ "$status" -eq 0 ]
	finish_server
	assert_verified 40000
	assert_spread 10000 32
}

@test "policy bytes: workers' byte counts stay within a few messages of each other" {
	# Sizes alternate 16 and 30000: by messages one worker would get every small message
	# and the other every large one. By bytes, each message goes to the worker served
	# fewer bytes, so they stay within a message or two (one per redirect here).
	start_server --workers 2 --policy bytes --max 65536 --conns 1 --expect 3000 --per-conn 3000 \
		"${STRICT[@]}"
	run client --conns 1 --count 3000 --size 16:30000 --size-dist alternate
	echo "$output"
	[ "$status" -eq 0 ]
	finish_server
	assert_verified 3000
	local mean b
	mean=$(( $(j .bytes) / 2 ))
	for b in $(j '.workers[].bytes'); do
		(( b >= mean - 100000 && b <= mean + 100000 )) ||
			{ echo "worker bytes $b not within 100000 of $mean"; return 1; }
	done
}

@test "--reply: the client gets every message back intact" {
	start_server --workers 2 --conns 2 --expect 4000 --reply
	run client --conns 2 --count 2000 --size 12:500 --replies --json
	echo "$output"
	[ "$status" -eq 0 ]
	expect_eq replies 4000 "$(echo "$output" | jq .replies)"
	expect_eq "reply corrupt" 0 "$(echo "$output" | jq .corrupt)"
	expect_eq "reply duplicate" 0 "$(echo "$output" | jq .duplicate)"
	expect_eq "reply missing" 0 "$(echo "$output" | jq .missing)"
	expect_eq "reply bytes" "$(echo "$output" | jq .bytes)" "$(echo "$output" | jq .reply_bytes)"
	finish_server
	expect_eq reply_errors 0 "$(j .reply_errors)"
	assert_verified 4000
}

@test "messages already queued when the transport is attached are delivered" {
	# The client sends at once (no --start-file); the server attaches 500 ms after
	# accept, so the messages wait in the TCP receive queue and no more come after.
	start_server --workers 2 --conns 1 --attach-delay 500 --expect 100 --timeout $((10 * SCALE))
	bg_client --count 100 --hold 60
	finish_server
	assert_verified 100
}

@test "the verifier reports corrupt and duplicate messages and fails" {
	start_server --workers 2 --conns 2 --expect 21 --timeout $((10 * SCALE))
	# conn 0 seq 99, body 16: ids right, last 4 bytes not the pattern
	bg_client --start-file "$ATTACHED" --count 10 --raw 00000010000000000000006300000010deadbeef
	run client --count 10
	[ "$status" -eq 0 ]
	finish_server 1
	expect_eq messages 21 "$(j .messages)"
	expect_eq corrupt 1 "$(j .corrupt)"
	expect_eq duplicate 10 "$(j .duplicate)"
	expect_eq verified false "$(j .verified)"
}

@test "SIGTERM: the server cleans up (pins removed) and exits 1" {
	start_server --workers 2 --conns 1 --expect 10
	[ -d "/sys/fs/bpf/kcm/$MUX" ]
	kill -TERM "$SERVER_PID"
	finish_server 1
	expect_eq result interrupted "$(j .result)"
	expect_eq verified false "$(j .verified)"
}

@test "command line: --help exits 0, usage errors exit 2 with a message" {
	run "$PROGS/kcm_server" --help
	[ "$status" -eq 0 ] && [[ "$output" == *"--listen ADDR:PORT"* ]]
	run "$PROGS/kcm_client" --help
	[ "$status" -eq 0 ] && [[ "$output" == *"--connect ADDR:PORT"* ]]
	run "$PROGS/kcm_server" --workers 2
	[ "$status" -eq 2 ] && [[ "$output" == *"--listen ADDR:PORT is required"* ]]
	run "$PROGS/kcm_server" --listen 127.0.0.1:1 --workers 0
	[ "$status" -eq 2 ] && [[ "$output" == *"invalid --workers '0'"* ]]
	run "$PROGS/kcm_server" --listen 127.0.0.1:1 --framing u16be+2
	[ "$status" -eq 2 ] && [[ "$output" == *"--no-verify"* ]]
	run "$PROGS/kcm_client" --connect 127.0.0.1:1 --mode sideways
	[ "$status" -eq 2 ] && [[ "$output" == *"invalid --mode 'sideways'"* ]]
	run "$PROGS/kcm_client" --connect 127.0.0.1:1 --size 9:3
	[ "$status" -eq 2 ] && [[ "$output" == *"MAX is below MIN"* ]]
}

@test "the parser scans with bpf_loop from 5.17, with a bounded loop before or when asked" {
	local want=kcm_parser_loop rel
	rel=$(uname -r)
	# bpf_loop came in 5.17
	if [ "${KCM_PARSER_LOOP:-}" = bounded ] || [ "$(printf '%s\n' 5.17 "${rel%%-*}" |
		sort -V | head -n 1)" != 5.17 ]; then
		want=kcm_parser
	fi
	"$LOADER" create "$MUX" >/dev/null
	run "$LOADER" status "$MUX" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r '.[0].programs[0].prog_name' <<<"$output")" = "$want" ]
}

@test "the suite leaves no namespaces, pins or processes behind" {
	local ns pins procs
	ns=$(ip netns list | awk '{print $1}' | grep "^kcmt-$$-" |
		grep -v -e "^$NS_C\$" -e "^$NS_S\$" || true)
	pins=$(ls /sys/fs/bpf/kcm 2>/dev/null | grep "^kcmt-traffic-$$-" || true)
	procs=$(pgrep -af "$PROGS/kcm_(server|client)" || true)
	[ -z "$ns$pins$procs" ] || { echo "left behind: $ns $pins $procs"; return 1; }
}
