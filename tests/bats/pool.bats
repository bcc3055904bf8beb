#!/usr/bin/env bats
# kcm-loader connect: a pool of N connections to one destination, kept attached to a mux
# through refused and unanswered connects, resets and a cut cable (docs/connect-pool.md).

load helpers

setup() {
	require_root
	netns_setup
	MUX=kcmt-pool-$$-$BATS_TEST_NUMBER
	TMP=$(mktemp -d)
	PORT=7600
}

teardown() {
	common_teardown
	[ -d "/sys/fs/bpf/kcm/$MUX-srv" ] && "$LOADER" destroy "$MUX-srv" >/dev/null 2>&1
	rm -rf "$TMP"
}

# start_pool ARGS...: `kcm-loader connect $MUX $DEST ARGS --json` in the client's
# namespace (DEST: $IP_S:$PORT unless set); events in $TMP/pool.json, its pid in POOL.
start_pool() {
	bg_run in_client "$LOADER" connect "$MUX" "${DEST:-$IP_S:$PORT}" --json "$@" \
		>"$TMP/pool.json" 2>"$TMP/pool.err"
	POOL=$BG_PID
}

# events FILTER: the pool's events (whole lines only) that match the jq FILTER.
events() {
	head -n "$(wc -l <"$TMP/pool.json")" "$TMP/pool.json" | jq -c "select($1)"
}

# wait_events FILTER N [SECONDS]: until N events match FILTER (default 10 s, times SCALE).
wait_events() {
	local i n=0
	for ((i = 0; i < ${3:-10} * 20 * SCALE; i++)); do
		n=$(events "$1" | wc -l)
		[ "$n" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "waited for $2 events '$1', saw $n:"
	cat "$TMP/pool.json" "$TMP/pool.err"
	return 1
}

# stop_pool: SIGTERM; it unattaches everything and exits 0.
stop_pool() {
	local rc=0
	kill -TERM "$POOL"
	wait "$POOL" || rc=$?
	[ "$rc" -eq 0 ] || { echo "connect exited $rc"; cat "$TMP/pool.err"; return 1; }
	[ "$(events '.event == "stopped"' | jq .unattached)" = "$1" ]
}

# cpu_ticks PID: user + system time of PID, in clock ticks.
cpu_ticks() {
	local st
	read -r -a st <"/proc/$1/stat"
	echo $((st[13] + st[14]))
}

@test "connect: usage errors exit 2, a missing mux exits 1 and is named" {
	run "$LOADER" connect "$MUX" "$IP_S:$PORT" --count 0
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --count '0'"* ]]
	run "$LOADER" connect "$MUX" "$IP_S:$PORT" --count 1025
	[ "$status" -eq 2 ]
	run "$LOADER" connect "$MUX" "$IP_S"
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid destination '$IP_S'"* ]]
	run "$LOADER" connect "$MUX" "::1:$PORT"
	[ "$status" -eq 2 ]
	run "$LOADER" connect "$MUX" "$IP_S:65536"
	[ "$status" -eq 2 ]
	run "$LOADER" connect "$MUX" "$IP_S:$PORT" --no-such-option
	[ "$status" -eq 2 ]
	run "$LOADER" connect "$MUX" "$IP_S:$PORT" --keepalive 0
	[ "$status" -eq 2 ]
	run "$LOADER" connect "$MUX"
	[ "$status" -eq 2 ]
	run "$LOADER" connect "$MUX" "[::1]:$PORT"
	[ "$status" -eq 1 ]
	[[ "$output" == *"no mux named '$MUX'"* ]]
	run "$LOADER" connect --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--connect-timeout MS"* ]]
}

@test "connect keeps 3 connections up and messages sent through the mux reach the server" {
	in_client "$LOADER" create "$MUX" >/dev/null
	# the server runs until its peers leave, so the pool's transports stay up to count
	bg_run in_server "$PROGS/kcm_server" --listen "$IP_S:$PORT" --conns 3 --expect 0 \
		--pin "$MUX-srv" --timeout $((30 * SCALE)) --json --ready-file "$TMP/server.ready" \
		>"$TMP/server.json" 2>"$TMP/server.err"
	server=$BG_PID
	wait_for_file "$TMP/server.ready"
	start_pool --count 3 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	# three connections to the server from the client, three cookies
	[ "$(events '.event == "connected"' | jq -r .remote | sort -u)" = "$IP_S:$PORT" ]
	[ "$(events '.event == "connected"' | jq .cookie | sort -u | wc -l)" = 3 ]
	[ "$(events '.event == "ready"' | jq -c '[.up, .count]')" = "[3,3]" ]
	in_client "$PROGS/pool_sender" --open "$MUX" --count 3000 --size 200
	wait_mux_rx "$MUX-srv" 3000
	in_client "$LOADER" stats "$MUX" --json >"$TMP/stats.json"
	jq -c '.[0].transports[] | [.cookie, .tx_msgs]' "$TMP/stats.json"
	# (shown if what follows fails: seen once in a busy guest, no transport left)
	cat "$TMP/pool.json" "$TMP/pool.err" "$TMP/server.err"
	[ "$(jq '.[0].transports | length' "$TMP/stats.json")" = 3 ]
	[ "$(jq '.[0].mux.tx_msgs' "$TMP/stats.json")" = 3000 ]
	[ "$(jq '[.[0].transports[].tx_msgs] | add' "$TMP/stats.json")" = 3000 ]
	# the pool's own cookies, and every transport carried some
	[ "$(jq '.[0].transports[].cookie' "$TMP/stats.json" | sort)" = \
		"$(events '.event == "connected"' | jq .cookie | sort)" ]
	[ "$(jq '[.[0].transports[] | select(.tx_msgs > 0)] | length' "$TMP/stats.json")" = 3 ]
	stop_pool 3
	# unattached, not merely closed: no transport left, none stale
	[ "$(in_client "$LOADER" stats "$MUX" --json | jq '.[0].transports | length')" = 0 ]
	in_client "$LOADER" status "$MUX" --json >"$TMP/status.json"
	[ "$(jq -c '.[0] | [(.transports | length), .stale_entries]' "$TMP/status.json")" = "[0,0]" ]
	[ ! -e "$TMP/pool.ready" ]
	# the pool's connections were the server's peers: it ends once they closed
	local rc=0
	wait "$server" || rc=$?
	cat "$TMP/server.json" "$TMP/server.err"
	[ "$rc" -eq 0 ]
	[ "$(jq .messages "$TMP/server.json")" = 3000 ]
	[ "$(jq .verified "$TMP/server.json")" = true ]
}

@test "connect: refused connects are retried with growing delays, asleep in between" {
	in_client "$LOADER" create "$MUX" >/dev/null
	started=$(date +%s%3N)
	start_pool --count 1 --backoff-min 100 --backoff-max 2000 --ready-file "$TMP/pool.ready"
	wait_events '.event == "connect_failed"' 4 5
	# the CPU it used in its first 2 s (start-up included), most of them spent waiting
	while [ $(( $(date +%s%3N) - started )) -lt 2000 ]; do sleep 0.05; done
	ticks=$(cpu_ticks "$POOL")
	events '.event == "connect_failed"' | jq -c '[.time_ms, .err, .retry_ms]'
	echo "# $ticks CPU ticks ($(getconf CLK_TCK)/s) in its first $(( $(date +%s%3N) - started )) ms" >&3
	[ "$ticks" -lt $((20 * SCALE)) ]
	# every attempt refused; each delay longer than the one before, as announced
	[ "$(events '.event == "connect_failed"' | jq .err | sort -u)" = 111 ]
	mapfile -t t < <(events '.event == "connect_failed"' | jq .time_ms)
	mapfile -t d < <(events '.event == "connect_failed"' | jq .retry_ms)
	local prev=0 i
	for ((i = 1; i < 4; i++)); do
		gap=$((t[i] - t[i - 1]))
		echo "# attempt $i -> $((i + 1)): ${gap} ms (announced ${d[i - 1]})" >&3
		[ "$gap" -gt "$prev" ]
		# millisecond-rounded times; an emulated CPU stamps an event up to tens of ms after
		# its timer started (a gap of 96 ms for an announced 124 in the 6.12 guest)
		[ "$gap" -ge $((d[i - 1] - 1 - 10 * (SCALE - 1))) ]
		[ "$gap" -le $((d[i - 1] + 100)) ]
		prev=$gap
	done
	# the 4 attempts fit in about 2 s: 100 + 200 + 400 ms, +-25 %
	[ $((t[3] - t[0])) -le 1000 ]
	[ ! -e "$TMP/pool.ready" ]
	# the server comes: the next attempt connects, within --backoff-max
	started=$(date +%s%3N)
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 1 \
		--ready-file "$TMP/holder.ready"
	wait_for_file "$TMP/pool.ready" 5
	up=$(( $(events '.event == "connected"' | jq .time_ms) - started ))
	echo "# connected ${up} ms after the server started" >&3
	[ "$up" -le 2500 ]
	[ "$(events '.event == "ready"' | jq .up)" = 1 ]
	stop_pool 1
}

@test "connect: a destination that never answers fails with ETIMEDOUT after --connect-timeout" {
	in_client "$LOADER" create "$MUX" >/dev/null
	# an address on the veth subnet whose frames go to the server's namespace, which
	# does not own it and does not forward: every SYN is dropped without an answer
	local ip_x=${IP_S%.*}.77
	mac=$(ip -n "$NS_S" -j link show "$VETH_S" | jq -r '.[0].address')
	ip -n "$NS_C" neigh add "$ip_x" lladdr "$mac" dev "$VETH_C" nud permanent
	DEST=$ip_x:$PORT
	started=$(date +%s%3N)
	start_pool --count 1 --connect-timeout 1000 --backoff-min 100
	wait_events '.event == "connect_failed"' 2 5
	events '.event == "connect_failed"' | jq -c '[.time_ms, .err, .error, .retry_ms]'
	first=$(events '.event == "connect_failed"' | head -1)
	[ "$(jq -r .error <<<"$first")" = "Connection timed out" ]
	[ "$(jq .err <<<"$first")" = 110 ]
	[ "$(jq -r .stage <<<"$first")" = connect ]
	took=$(( $(jq .time_ms <<<"$first") - started ))
	echo "# first connect gave up after ${took} ms (timeout 1000)" >&3
	[ "$took" -ge 998 ] # two millisecond-rounded times
	[ "$took" -le $((1000 + 500 * SCALE)) ]
	# the retry starts after the announced delay and is bounded the same way
	mapfile -t t < <(events '.event == "connect_failed"' | jq .time_ms)
	gap=$((t[1] - t[0] - $(jq .retry_ms <<<"$first")))
	echo "# second attempt gave up ${gap} ms after it started" >&3
	# three millisecond-rounded times: 1087 - 88 = 999 was seen for a 1000 ms timeout; an
	# emulated CPU stamps events late (993 in a contended 6.1 guest)
	[ "$gap" -ge $((997 - 10 * (SCALE - 1))) ]
	[ "$gap" -le $((1000 + 200 * SCALE)) ]
	stop_pool 0
}

@test "connect: a transport reset by the server is reported and replaced" {
	in_client "$LOADER" create "$MUX" >/dev/null
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 3 \
		--ready-file "$TMP/holder.ready"
	wait_listen "$PORT"
	start_pool --count 2 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	victim=$(events '.event == "connected"' | head -1)
	cookie=$(jq .cookie <<<"$victim")
	lport=$(jq -r .local <<<"$victim")
	lport=${lport##*:}
	# the server's end of that connection is destroyed: RST to the client
	killed=$(date +%s%3N)
	in_server ss -tnK dst "$IP_C" dport = :"$lport" >/dev/null
	wait_events '.event == "failed"' 1 5
	wait_events '.event == "connected"' 3 5
	cat "$TMP/pool.json"
	failed=$(events '.event == "failed"')
	[ "$(jq .cookie <<<"$failed")" = "$cookie" ]
	[ "$(jq -r .reason <<<"$failed")" = reset ]
	[ "$(jq .err <<<"$failed")" = 104 ]
	[ "$(jq .up <<<"$failed")" = 1 ]
	seen=$(( $(jq .time_ms <<<"$failed") - killed ))
	echo "# reset seen ${seen} ms after ss -K" >&3
	[ "$seen" -le $((500 * SCALE)) ]
	# the replacement: a new cookie, 2 up again, and the mux has exactly those two
	last=$(events '.event == "connected"' | tail -1)
	[ "$(jq .up <<<"$last")" = 2 ]
	[ "$(jq .cookie <<<"$last")" != "$cookie" ]
	in_client "$LOADER" stats "$MUX" --json >"$TMP/stats.json"
	[ "$(jq '.[0].transports | length' "$TMP/stats.json")" = 2 ]
	[ "$(jq "[.[0].transports[] | select(.cookie == $cookie)] | length" "$TMP/stats.json")" = 0 ]
	[ "$(jq '.[0].mux.auto_unattached' "$TMP/stats.json")" = 1 ]
	stop_pool 2
}

@test "connect: after a cable cut keepalive finds both transports dead, and they come back" {
	in_client "$LOADER" create "$MUX" >/dev/null
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 4 \
		--ready-file "$TMP/holder.ready"
	wait_listen "$PORT"
	# keepalive: 1 s idle, probes every 1 s, 2 unanswered: dead 3 s after the last data
	start_pool --count 2 --keepalive 1,1,2 --backoff-max 1000 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	cut=$(date +%s%3N)
	ip -n "$NS_C" link set "$VETH_C" down
	wait_events '.event == "failed"' 2 8
	events '.event == "failed"' | jq -c '[.time_ms, .reason, .err, .error]'
	[ "$(events '.event == "failed"' | jq -r .reason | sort -u)" = timeout ]
	for ft in $(events '.event == "failed"' | jq .time_ms); do
		echo "# transport found dead $((ft - cut)) ms after the cut" >&3
		[ $((ft - cut)) -le 3700 ]
	done
	# while the cable is out, connects fail at once and are retried no faster than backoff
	wait_events ".event == \"connect_failed\" and .time_ms >= $cut" 2 5
	events '.event == "connect_failed"' | jq -c '[.time_ms, .err, .error, .retry_ms]'
	[ "$(events '.event == "connect_failed"' | jq .err | sort -u)" = 101 ] # ENETUNREACH
	ticks0=$(cpu_ticks "$POOL")
	sleep 1
	ticks=$(( $(cpu_ticks "$POOL") - ticks0 ))
	echo "# $ticks CPU ticks in 1 s of the cable out" >&3
	[ "$ticks" -lt $((10 * SCALE)) ]
	fixed=$(date +%s%3N)
	ip -n "$NS_C" link set "$VETH_C" up
	wait_events '.event == "connected"' 4 5
	back=$(( $(events '.event == "connected"' | tail -1 | jq .time_ms) - fixed ))
	echo "# both back ${back} ms after the cable" >&3
	[ "$back" -le 1500 ]
	[ "$(events '.event == "connected"' | tail -1 | jq .up)" = 2 ]
	[ "$(in_client "$LOADER" stats "$MUX" --json | jq '.[0].transports | length')" = 2 ]
	stop_pool 2
}

@test "connect: a server restart closes every transport; the pool waits and reconnects" {
	in_client "$LOADER" create "$MUX" >/dev/null
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 2 \
		--ready-file "$TMP/holder.ready"
	holder=$BG_PID
	wait_listen "$PORT"
	start_pool --count 2 --backoff-max 1000 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	wait_for_file "$TMP/holder.ready"
	killed=$(date +%s%3N)
	kill "$holder"
	wait "$holder" || true
	# FIN on both: peer-closed, no error, nothing lost; then refused connects, retried no
	# faster than backoff
	wait_events '.event == "failed"' 2 5
	events '.event == "failed"' | jq -c '[.time_ms, .reason, .err, .lost_msgs]'
	[ "$(events '.event == "failed"' | jq -c '[.reason, .err, .lost_msgs]' | sort -u)" = \
		'["peer-closed",0,0]' ]
	seen=$(( $(events '.event == "failed"' | tail -1 | jq .time_ms) - killed ))
	echo "# both FINs handled ${seen} ms after the server was killed" >&3
	[ "$seen" -le $((500 * SCALE)) ]
	[ "$(events '.event == "failed"' | tail -1 | jq .up)" = 0 ]
	wait_events '.event == "connect_failed"' 4 5
	[ "$(events '.event == "connect_failed"' | jq .err | sort -u)" = 111 ]
	ticks0=$(cpu_ticks "$POOL")
	sleep 1
	ticks=$(( $(cpu_ticks "$POOL") - ticks0 ))
	n=$(events '.event == "connect_failed"' | wc -l)
	echo "# server down: $ticks CPU ticks in 1 s, $n refused connects so far" >&3
	[ "$ticks" -lt $((10 * SCALE)) ]
	[ "$n" -le $((20 * SCALE)) ]
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 2 \
		--ready-file "$TMP/holder2.ready"
	wait_events '.event == "connected"' 4 5
	[ "$(events '.event == "connected"' | tail -1 | jq .up)" = 2 ]
	wait_for_file "$TMP/holder2.ready"
	[ "$(in_client "$LOADER" stats "$MUX" --json | jq '.[0].transports | length')" = 2 ]
	stop_pool 2
}

@test "connect: IPv6 destinations in brackets" {
	in_client "$LOADER" create "$MUX" >/dev/null
	ip -n "$NS_C" -6 addr add fd00:99::1/64 dev "$VETH_C" nodad
	ip -n "$NS_S" -6 addr add fd00:99::2/64 dev "$VETH_S" nodad
	bg_run in_server "$PROGS/tcp_holder" --listen "[fd00:99::2]:$PORT" --conns 2 \
		--ready-file "$TMP/holder.ready"
	DEST="[fd00:99::2]:$PORT"
	start_pool --count 2 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	[ "$(events '.event == "connected"' | jq -r .remote | sort -u)" = "[fd00:99::2]:$PORT" ]
	[ "$(events '.event == "connected"' | jq -r .local | sed 's/:[0-9]*$//' | sort -u)" = \
		"[fd00:99::1]" ]
	in_client "$LOADER" stats "$MUX" --json >"$TMP/stats.json"
	[ "$(jq -r '.[0].transports[].remote' "$TMP/stats.json" | sort -u)" = "[fd00:99::2]:$PORT" ]
	stop_pool 2
}

@test "connect: a listener whose backlog is full resets a connection the pool thought was up" {
	in_client "$LOADER" create "$MUX" >/dev/null
	# the server answers an overflow with a RST (the default silently drops the ACK)
	in_server sysctl -qw net.ipv4.tcp_abort_on_overflow=1
	# a listener that never accepts, with room for one connection; TCP_DEFER_ACCEPT keeps
	# a connection out of the accept queue until its first data, as busy servers do
	bg_run in_server /usr/bin/python3 -c "
import socket, time
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 30)
s.bind(('$IP_S', $PORT))
s.listen(0)
open('$TMP/listening', 'w').close()
time.sleep(60)"
	wait_for_file "$TMP/listening"
	start_pool --count 1 --connect-timeout 500 --backoff-min 100 --backoff-max 400
	wait_events '.event == "connected"' 1
	cookie=$(events '.event == "connected"' | jq .cookie)
	# another client's first data takes the one place in the accept queue
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:$PORT" --count 1 --hold 60
	for ((i = 0; i < 100 * SCALE; i++)); do
		[ "$(in_server ss -Hltn sport = :"$PORT" | awk '{ print $2 }')" = 1 ] && break
		sleep 0.05
	done
	[ "$(in_server ss -Hltn sport = :"$PORT" | awk '{ print $2 }')" = 1 ]
	# the pool's transport looked established; its first message meets the full queue
	in_client "$PROGS/pool_sender" --open "$MUX" --count 1
	wait_events '.event == "failed"' 1
	failed=$(events '.event == "failed"')
	echo "$failed"
	[ "$(jq .cookie <<<"$failed")" = "$cookie" ]
	[ "$(jq -r .reason <<<"$failed")" = reset ]
	[ "$(jq .err <<<"$failed")" = 104 ]
	# the queue stays full: new SYNs are dropped, so replacements time out and back off
	wait_events '.event == "connect_failed" and .err == 110' 2 5
	[ "$(in_client "$LOADER" stats "$MUX" --json | jq '.[0].mux.transport_failures')" = 1 ]
	[ "$(in_client "$LOADER" stats "$MUX" --json | jq '.[0].mux.tx_msgs')" = 1 ]
	stop_pool 0
}

@test "clean forgets the transports of a pool killed with SIGKILL, counting them unattached" {
	in_client "$LOADER" create "$MUX" >/dev/null
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 2 \
		--ready-file "$TMP/holder.ready"
	start_pool --count 2 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	kill -KILL "$POOL"
	wait "$POOL" || true
	# the sockets closed with their owner: the sockmap dropped them, the records stay
	[ "$("$LOADER" status "$MUX" --json | jq '.[0].stale_entries')" = 2 ]
	"$LOADER" clean --dry-run | grep "would forget 2 closed transports of mux '$MUX'"
	run "$LOADER" clean
	[ "$status" -eq 0 ]
	[[ "$output" == *"forgot 2 closed transports of mux '$MUX'"* ]]
	[ "$("$LOADER" status "$MUX" --json | jq '.[0].stale_entries')" = 0 ]
	[ "$("$LOADER" stats "$MUX" --json | jq '.[0].mux.unattaches')" = 2 ]
	[ "$("$LOADER" stats "$MUX" --json | jq '.[0].mux.attaches')" = 2 ]
}

@test "connect: a cable cut while messages are unacknowledged is found by --user-timeout" {
	in_client "$LOADER" create "$MUX" >/dev/null
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:$PORT" --conns 2 \
		--ready-file "$TMP/holder.ready"
	wait_listen "$PORT"
	# no keepalive: only the user timeout can find a dead peer while data is outstanding
	start_pool --count 1 --user-timeout 1500 --backoff-max 1000 --ready-file "$TMP/pool.ready"
	wait_for_file "$TMP/pool.ready"
	ip -n "$NS_C" link set "$VETH_C" down
	sent=$(date +%s%3N)
	in_client "$PROGS/pool_sender" --open "$MUX" --count 10 # queued: nothing acknowledges it
	wait_events '.event == "failed"' 1 8
	failed=$(events '.event == "failed"')
	echo "$failed"
	[ "$(jq -r .reason <<<"$failed")" = timeout ]
	[ "$(jq .err <<<"$failed")" = 110 ]
	delay=$(( $(jq .time_ms <<<"$failed") - sent ))
	echo "# found dead ${delay} ms after the unacknowledged send (TCP_USER_TIMEOUT 1500)" >&3
	# the limit is checked when the retransmission timer fires: allow its backoff
	[ "$delay" -ge 1400 ]
	[ "$delay" -le 3500 ]
	[ "$(in_client "$LOADER" stats "$MUX" --json | jq '.[0].mux.tx_msgs')" = 10 ]
	ip -n "$NS_C" link set "$VETH_C" up
	wait_events '.event == "connected"' 2 5
	stop_pool 1
}
