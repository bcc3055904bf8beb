#!/usr/bin/env bats
# A peer that resets or closes in the middle of a message, or sends a frame over the
# maximum: the transport is reported with its reason, unattached, its half message is
# counted as lost (once), the other transport delivers everything, nothing is duplicated,
# and the counters (`kcm-loader stats`) agree with what was sent.

load helpers

setup() {
	require_root
	netns_setup
	MUX=kcmt-err-$$-$BATS_TEST_NUMBER
	TMP=$(mktemp -d)
}

teardown() {
	common_teardown
	rm -rf "$TMP"
}

stats() { "$LOADER" stats "$MUX" --json | jq ".[0]$1"; }

# wait_until JQ-EXPR: until the mux's stats satisfy it, at most 10 s times SCALE.
wait_until() {
	local i
	for ((i = 0; i < 200 * SCALE; i++)); do
		[ "$("$LOADER" stats "$MUX" --json 2>/dev/null | jq ".[0] | $1")" = true ] && return 0
		sleep 0.05
	done
	echo "stats never satisfied: $1"
	"$LOADER" stats "$MUX"
	return 1
}

# start_server ERRORS: 2 connections; finishes when both peers are gone (and quiet).
start_server() {
	bg_run in_server "$PROGS/kcm_server" --listen "$IP_S:7500" --pin "$MUX" --workers 2 \
		--conns 2 --expect-errors "$1" --timeout $((30 * SCALE)) --json \
		--ready-file "$TMP/ready" --attached-file "$TMP/attached" >"$TMP/server.json" \
		2>"$TMP/server.err"
	SERVER=$BG_PID
	wait_for_file "$TMP/ready"
}

finish_server() {
	local rc=0
	wait "$SERVER" || rc=$?
	cat "$TMP/server.json" "$TMP/server.err"
	return $rc
}

@test "peer RST in the middle of a message: reset, 1 message lost, the other transport delivers all" {
	start_server 1
	# 100 whole messages, then 10 bytes of the 101st, then held open with SO_LINGER 0
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7500" --count 100 --conn-base 0 \
		--stall 10 --close rst --hold 60
	rst_client=$BG_PID
	wait_until '.mux.rx_msgs == 100 and ([.transports[] | select(.partial == 1)] | length) == 1'
	kill "$rst_client" # its fd closes with linger 0: a RST, with the half message pending
	wait "$rst_client" || true
	# held while the stats below are read: the server ends, and its mux with it, once both
	# peers are gone (a guest needs longer for the reads)
	in_server "$PROGS/kcm_client" --connect "$IP_S:7500" --count 1000 --conn-base 1 \
		--hold $((2 * SCALE)) &
	other=$!
	wait_until '.mux.transport_failures == 1 and .mux.rx_msgs == 1100'
	# the counters agree with what was sent and lost
	[ "$(stats .mux.lost_msgs)" = 1 ]
	[ "$(stats .mux.lost_bytes)" = 10 ]
	[ "$(stats .mux.auto_unattached)" = 1 ]
	[ "$(stats .mux.unattaches)" = 1 ]
	[ "$(stats .mux.attaches)" = 2 ]
	[ "$(stats '.transports | length')" = 1 ]
	[ "$(stats '.transports[0].rx_msgs')" = 1000 ]
	# the same counters through bpftool, from the pinned maps
	m=/sys/fs/bpf/kcm/$MUX
	[ "$(bpftool -j map dump pinned "$m/mux_stats" | jq '.[0].formatted.value.lost_msgs')" = 1 ]
	[ "$(bpftool -j map dump pinned "$m/mux_stats" | jq '.[0].formatted.value.lost_bytes')" = 10 ]
	# the reset transport's slot went to the second one, which starts from zero
	[ "$(bpftool -j map dump pinned "$m/transport_stats" |
		jq '[.[].formatted.value.rx_msgs] | add')" = 1000 ]
	wait "$other"
	finish_server
	[ "$(jq .messages "$TMP/server.json")" = 1100 ]
	[ "$(jq .duplicate "$TMP/server.json")" = 0 ]
	[ "$(jq .corrupt "$TMP/server.json")" = 0 ]
	[ "$(jq -r '.transport_errors[0].reason' "$TMP/server.json")" = reset ]
	[ "$(jq '.transport_errors[0].so_error' "$TMP/server.json")" = 104 ]
	[ "$(jq '.transport_errors[0].lost_msgs' "$TMP/server.json")" = 1 ]
	[ "$(jq '.transport_errors[0].lost_bytes' "$TMP/server.json")" = 10 ]
}

@test "peer FIN in the middle of a message: peer-closed, the half message lost, whole ones delivered" {
	start_server 0
	# both connect first, and send once the server attached them (a sockmap takes only
	# established sockets); then each closes with a FIN
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7500" --count 300 --conn-base 0 \
		--stall 7 --start-file "$TMP/attached"
	half=$BG_PID
	bg_run in_server "$PROGS/kcm_client" --connect "$IP_S:7500" --count 500 --conn-base 1 \
		--start-file "$TMP/attached"
	whole=$BG_PID
	wait "$half"
	wait "$whole"
	finish_server
	[ "$(jq .messages "$TMP/server.json")" = 800 ]
	[ "$(jq .verified "$TMP/server.json")" = true ]
	[ "$(jq .duplicate "$TMP/server.json")" = 0 ]
	[ "$(jq '.transport_errors | length' "$TMP/server.json")" = 0 ]
	# both peers left; only the one that stopped mid-message lost anything: 7 bytes
	[ "$(jq '.peers_closed | length' "$TMP/server.json")" = 2 ]
	[ "$(jq '[.peers_closed[].lost_msgs] | add' "$TMP/server.json")" = 1 ]
	[ "$(jq '[.peers_closed[].lost_bytes] | add' "$TMP/server.json")" = 7 ]
}

@test "a frame over the maximum: too-big, counted per transport, the other carries on" {
	start_server 1
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7500" --count 50 --conn-base 0 \
		--oversize --hold 60
	bad=$BG_PID
	in_server "$PROGS/kcm_client" --connect "$IP_S:7500" --count 400 --conn-base 1 \
		--hold $((2 * SCALE)) &
	other=$!
	wait_until '.mux.transport_failures == 1 and .mux.rx_msgs == 450'
	stats .mux; stats .transports
	[ "$(stats .mux.err_too_big)" = 1 ]
	[ "$(stats .mux.lost_msgs)" = 1 ]
	[ "$(stats .mux.tx_errors)" = 0 ]
	wait "$other"
	kill "$bad"
	finish_server
	[ "$(jq .messages "$TMP/server.json")" = 450 ]
	[ "$(jq -r '.transport_errors[0].reason' "$TMP/server.json")" = too-big ]
	[ "$(jq '.transport_errors[0].so_error' "$TMP/server.json")" = 90 ]
	[ "$(jq '.transport_errors[0].lost_msgs' "$TMP/server.json")" = 1 ]
}

@test "the suite leaves no namespaces, pins or processes behind" {
	common_teardown
	[ -z "$(ip netns list | grep "kcmt-$$-")" ]
	[ ! -d "/sys/fs/bpf/kcm/$MUX" ]
}
