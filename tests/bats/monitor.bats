#!/usr/bin/env bats
# kcm-loader monitor on real traffic: a transport behind a slow link crosses the srtt
# threshold and one over loopback does not; lost packets give retransmission events at
# and past the threshold only; a peer's RST is reported as the death of the transport with
# ECONNRESET; the sock_ops program's cost per callback is measured. KCM_MONITOR_TRACE=1
# runs every case on the tracing path (--trace), which monitor takes by itself where it
# cannot arm transports (kcm-loader check: monitor-arm). This kernel has no
# netem: delay comes from tbf queueing, loss from a tc ingress BPF program built here.

load helpers

setup() {
	require_root
	command -v jq >/dev/null || skip "needs jq"
	netns_setup
	MUX=kcmt-mon-$$-$BATS_TEST_NUMBER
	TMP=$(mktemp -d)
	CGROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$CGROOT" ] || skip "no cgroup v2 mounted"
}

teardown() {
	common_teardown
	rm -rf "$TMP"
}

# no_programs_left: neither health program is attached anywhere in the cgroup tree.
no_programs_left() {
	local tree
	tree=$(bpftool cgroup tree "$CGROOT")
	if grep -q 'kcm_health' <<<"$tree"; then
		echo "programs left attached:"
		echo "$tree"
		return 1
	fi
	# the tracing path's programs (names cut at 15 characters)
	if bpftool prog show | grep -q 'kcm_health_tra'; then
		echo "tracing programs left loaded:"
		bpftool prog show | grep 'kcm_health_tra'
		return 1
	fi
}

# start_server CONNS [ERRORS [KCM_SERVER ARGS...]]: a mux pinned as $MUX that echoes every message (so its
# transports send data and get RTT samples). Waits until it listens.
start_server() {
	bg_run in_server "$PROGS/kcm_server" --listen "$IP_S:7600" --pin "$MUX" --conns "$1" \
		--reply --expect-errors "${2:-0}" --timeout $((120 * SCALE)) --ready-file "$TMP/ready" \
		--attached-file "$TMP/attached" "${@:3}" >"$TMP/server.out" 2>&1
	SERVER=$BG_PID
	wait_for_file "$TMP/ready"
}

# client WHERE CONN-ID ARGS...: messages that start once the monitor armed the transports.
client() {
	local where=$1 id=$2
	shift 2
	bg_run "$where" "$PROGS/kcm_client" --connect "$IP_S:7600" --conn-base "$id" \
		--replies --timeout $((120 * SCALE)) --start-file "$TMP/armed" "$@"
}

# monitor ARGS...: run kcm-loader monitor in the background, its events in $TMP/events.
monitor() {
	rm -f "$TMP/armed"
	bg_run "$LOADER" monitor "$MUX" --json --ready-file "$TMP/armed" \
		${KCM_MONITOR_TRACE:+--trace} "$@"
	MONITOR=$BG_PID
}

finish_monitor() {
	local rc=0
	wait "$MONITOR" || rc=$?
	echo "monitor exited $rc; events:"
	cat "$TMP/events"
	return $rc
}

# health events only: the echo traffic may also fill the KCM sockets, and flow control's
# brake/release events (tested in flow.bats) would count here
events() { jq -c "select(.event != \"brake\" and .event != \"release\") | select($1)" "$TMP/events"; }
count() { events "$1" | wc -l; }

# tbf on both ends of the veth: at 512 kbit/s a full queue holds up to 1 s of data, so a
# busy connection's RTT climbs to hundreds of ms, and never past 2 s plus processing.
# Over loopback the RTT stays under ~45 ms: the delayed ACK is capped at 40 ms (ato is
# bounded by max(srtt, TCP_DELACK_MIN)) once the client has nothing left to send.
slow_link() {
	tc -n "$NS_C" qdisc add dev "$VETH_C" root tbf rate 512kbit burst 32kbit latency 1s
	tc -n "$NS_S" qdisc add dev "$VETH_S" root tbf rate 512kbit burst 32kbit latency 1s
}

# lossy_link PERCENT: drop that share of IPv4 packets arriving at the client, so what the
# server's transport sends is lost on the wire (drops in the sender's own qdisc are not:
# TCP sees them as a local congestion signal).
lossy_link() {
	local inc
	inc=$(clang -v -E - </dev/null 2>&1 |
		sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')
	cat >"$TMP/drop.bpf.c" <<EOF
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int drop(struct __sk_buff *skb)
{
	if (skb->protocol == __builtin_bswap16(0x0800) && bpf_get_prandom_u32() % 100 < $1)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}
char LICENSE[] SEC("license") = "GPL";
EOF
	# shellcheck disable=SC2086
	clang -O2 -g -target bpf $inc -c "$TMP/drop.bpf.c" -o "$TMP/drop.bpf.o"
	tc -n "$NS_C" qdisc add dev "$VETH_C" clsact
	tc -n "$NS_C" filter add dev "$VETH_C" ingress bpf direct-action obj "$TMP/drop.bpf.o" \
		sec tc
}

@test "srtt: the transport behind a slow link crosses the threshold, the loopback one does not" {
	slow_link
	start_server 2
	client in_client 0 --count 100000 --size 1000 --hold 60
	client in_server 1 --count 100000 --size 1000 --hold 60
	wait_for_file "$TMP/attached"
	monitor --srtt-us 150000 --duration $((6 * SCALE)) >"$TMP/events"
	wait_for_file "$TMP/armed"
	finish_monitor
	# the slow transport: edge-triggered events, each over the threshold, with a snapshot
	[ "$(count ".event == \"srtt\" and (.remote | startswith(\"$IP_C:\"))")" -ge 1 ]
	[ "$(count '.event == "srtt" and (.value <= 150000 or .threshold != 150000)')" = 0 ]
	[ "$(count '.event == "srtt" and (.tcp_info.srtt_us < 150000 or .tcp_info.snd_cwnd == 0
		or .tcp_info.bytes_acked == 0 or .tcp_info.rto_us == 0)')" = 0 ]
	[ "$(count '.event == "srtt" and .state != "ESTABLISHED"')" = 0 ]
	# the loopback transport stays below it
	[ "$(count ".event == \"srtt\" and (.remote | startswith(\"$IP_S:\"))")" = 0 ]
	echo "# slow link srtt: $(events '.event == "srtt"' | jq -r .value | tr '\n' ' ')us" >&3
	no_programs_left

	# the same traffic against a threshold no RTT can reach here (tbf bounds the queue to
	# 1 s each way): no event, although the program ran on the same transports
	monitor --srtt-us 3000000 --duration $((4 * SCALE)) --stats-cost >"$TMP/events"
	wait_for_file "$TMP/armed"
	finish_monitor
	[ "$(count '.event')" = 0 ]
	[ "$(jq -s '[.[] | select(.stats_cost)][0].stats_cost.run_cnt' "$TMP/events")" -gt 0 ]
	no_programs_left
}

@test "retrans: events only once total retransmissions reach the threshold" {
	lossy_link 10
	# workers echo onto the lossy transport and block there: with the default window the
	# mux then brakes both transports (a closed window makes even the loopback one
	# retransmit, and brake events are reported). 64 MiB holds all 40 MB of the test.
	start_server 2 0 --rx-window 67108864
	client in_client 0 --count 20000 --size 1000 --hold 60
	client in_server 1 --count 20000 --size 1000 --hold 60
	wait_for_file "$TMP/attached"
	monitor --retrans 5 --duration $((6 * SCALE)) >"$TMP/events"
	wait_for_file "$TMP/armed"
	finish_monitor
	[ "$(count ".event == \"retrans\" and (.remote | startswith(\"$IP_C:\"))")" -ge 1 ]
	# never below the threshold, and the snapshot agrees with the value
	[ "$(count '.event == "retrans" and (.value < 5 or .threshold != 5)')" = 0 ]
	[ "$(count '.event == "retrans" and .tcp_info.total_retrans != .value')" = 0 ]
	# the loopback transport loses nothing
	[ "$(count ".event == \"retrans\" and (.remote | startswith(\"$IP_S:\"))")" = 0 ]
	# nothing else was asked for
	[ "$(count '.event != "retrans"')" = 0 ]
	echo "# retrans events: $(count '.event == "retrans"'), last total_retrans $(
		events '.event == "retrans"' | tail -1 | jq .value)" >&3
	no_programs_left
}

@test "rto: every retransmission timeout of a transport whose peer hears nothing, counted from 1" {
	start_server 1
	client in_client 0 --count 50 --size 100 --hold 60
	wait_for_file "$TMP/attached"
	# connected: from now on the requests arrive, and every reply and ACK to the client
	# is lost
	lossy_link 100
	monitor --rto --duration $((5 * SCALE)) >"$TMP/events"
	wait_for_file "$TMP/armed"
	finish_monitor
	# 200 ms, then doubling: at least 3 timeouts in 5 s, numbered 1, 2, 3...
	[ "$(count '.event == "rto"')" -ge 3 ]
	[ "$(events '.event == "rto"' | jq -s '[.[].value] == ([range(1; length + 1)])')" = true ]
	[ "$(count ".event == \"rto\" and (.remote | startswith(\"$IP_C:\")) | not")" = 0 ]
	[ "$(count '.event != "rto"')" = 0 ]
	no_programs_left
}

@test "state: a peer's RST is the transport's death, ESTABLISHED -> CLOSE with ECONNRESET" {
	start_server 1 1
	client in_client 0 --count 100 --close rst --hold 60
	rst_client=$BG_PID
	wait_for_file "$TMP/attached"
	monitor --state --count 1 --duration 20 >"$TMP/events"
	wait_for_file "$TMP/armed"
	kill "$rst_client" # its fd closes with linger 0: a RST
	finish_monitor
	[ "$(count '.event == "state"')" = 1 ]
	event=$(events '.event == "state"')
	[ "$(jq -r .state <<<"$event")" = CLOSE ]
	[ "$(jq -r .old_state <<<"$event")" = ESTABLISHED ]
	[ "$(jq .err <<<"$event")" = 104 ]
	[ "$(jq -r .error <<<"$event")" = "Connection reset by peer" ]
	[[ "$(jq -r .remote <<<"$event")" == "$IP_C:"* ]]
	[ "$(jq -r .local <<<"$event")" = "$IP_S:7600" ]
	no_programs_left
}

@test "a transport's death is reported without --state, a FIN close with err 0" {
	start_server 1
	client in_client 0 --count 100 --hold 1
	wait_for_file "$TMP/attached"
	monitor --srtt-us 3000000 --count 1 --duration 20 >"$TMP/events"
	wait_for_file "$TMP/armed"
	finish_monitor
	[ "$(count '.event == "state"')" = 1 ]
	# the peer's FIN, then the server's own close: LAST_ACK -> CLOSE, no error
	[ "$(events '.event == "state"' | jq -r .state)" = CLOSE ]
	[ "$(events '.event == "state"' | jq .err)" = 0 ]
	no_programs_left
}

@test "cost: the programs' run time per callback, with no threshold crossed" {
	start_server 1
	# one write per message and an echo for each: many small ACKs, an RTT_CB for each
	client in_server 0 --count 200000 --size 100 --mode each --hold 60
	wait_for_file "$TMP/attached"
	monitor --srtt-us 3000000 --duration $((4 * SCALE)) --stats-cost >"$TMP/events"
	wait_for_file "$TMP/armed"
	finish_monitor
	[ "$(count '.event')" = 0 ]
	cost=$(jq -c 'select(.stats_cost) | .stats_cost' "$TMP/events")
	[ "$(jq .run_cnt <<<"$cost")" -gt 0 ]
	[ "$(jq .run_time_ns <<<"$cost")" -gt 0 ]
	echo "# $(jq -r .path <<<"$cost"): $(jq .run_cnt <<<"$cost") callbacks, $(jq .ns_per_callback <<<"$cost")" \
		"ns per callback (run_time_ns / run_cnt, bpf_stats on for the run)" >&3
	no_programs_left
}

@test "libkcm's kcm_monitor API: arming, a peer's RST as ECONNRESET, the callback's stop, bad options" {
	run "$PROGS/monitor_check"
	echo "$output"
	for name in monitor_events monitor_stop monitor_bad_opts; do
		[[ "$output" == *"PASS $name"* ]] || { echo "missing: PASS $name"; return 1; }
	done
	[[ "$output" != *"FAIL "* ]]
	[ "$status" -eq 0 ]
	no_programs_left
}

@test "monitor: clear errors for a missing mux and a bad cgroup, nothing attached after" {
	run "$LOADER" monitor "$MUX"
	[ "$status" -eq 1 ]
	[[ "$output" == *"no mux named '$MUX'"* ]]
	start_server 1
	run "$LOADER" monitor "$MUX" --cgroup "$TMP/not-a-cgroup"
	[ "$status" -eq 1 ]
	[[ "$output" == *"failed to open cgroup $TMP/not-a-cgroup"* ]]
	run "$LOADER" monitor "$MUX" --srtt-us 0
	[ "$status" -eq 2 ]
	no_programs_left
}

@test "the suite leaves no namespaces, pins, programs or processes behind" {
	common_teardown
	[ -z "$(ip netns list | grep "kcmt-$$-")" ]
	[ ! -d "/sys/fs/bpf/kcm/$MUX" ]
	no_programs_left
}
