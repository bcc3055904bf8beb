#!/usr/bin/env bats
# The sidecar: `kcm-loader serve` owns a mux, and an application with no privileges
# (uid 65534, no capabilities) uses it through kcm_mux_connect(): KCM sockets, attach,
# receive and send on its own sockets, recv-disable. Refusals, garbage, a client that dies,
# SIGTERM and SIGKILL, the socket's permissions.

load helpers

setup() {
	require_root
	command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
	MUX=kcmt-sc-$$-$BATS_TEST_NUMBER
	TMP=$(mktemp -d)
	chmod 755 "$TMP"
	SOCK=$TMP/kcm.sock
	# uid 65534 runs it: the build folder may be closed to others (a mktemp -d clone)
	cp "$PROGS/sidecar_check" "$TMP/"
	CHECK=$TMP/sidecar_check
}

teardown() {
	common_teardown
	rm -rf "$TMP"
}

# serve [ARGS...]: start the sidecar of $MUX on $SOCK, logging to $TMP/log
serve() {
	bg_run "$LOADER" serve "$MUX" --socket "$SOCK" "$@" >"$TMP/log" 2>&1
	SERVE_PID=$BG_PID
	wait_for_file "$SOCK" 10 || { cat "$TMP/log"; false; }
}

# as_nobody CMD...: CMD as uid/gid 65534 with no capabilities at all
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		--bounding-set=-all env KCM_SIDECAR_SOCKET="$SOCK" "$@"
}

# check_passes NAME...: sidecar_check's subtests, run unprivileged, all pass
check_passes() {
	run as_nobody "$CHECK" "$@"
	echo "$output"
	local n
	for n in "$@"; do
		[[ "$output" == *"PASS $n"* ]] || { echo "missing: PASS $n"; return 1; }
	done
	[[ "$output" != *"FAIL "* ]]
	[ "$status" -eq 0 ]
}

# log_has PATTERN [SECONDS]: the sidecar's log gets a line matching PATTERN
log_has() {
	local i
	for ((i = 0; i < ${2:-5} * 10; i++)); do
		grep -qE "$1" "$TMP/log" && return 0
		sleep 0.1
	done
	echo "no '$1' in the log:"
	cat "$TMP/log"
	return 1
}

@test "an unprivileged application receives, sends and recv-disables through it" {
	serve --allow-uid 65534
	check_passes sidecar_data_path sidecar_recv_disable sidecar_transport_poll \
		sidecar_refusals
	log_has "^attach client pid [0-9]+ uid 65534: transport [0-9]+ \(slot [0-9]+\)"
	log_has "^gone client pid [0-9]+ uid 65534: disconnected: closed 1 KCM sockets, unattached 0"
	# the mux is pinned and healthy beside it
	run "$LOADER" status "$MUX" --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r '.[0].state')" = ok ]
}

@test "a mux with a parser program (--frame thrift) serves the same application" {
	serve --allow-uid 65534 --frame thrift
	check_passes sidecar_data_path sidecar_transport_poll
}

@test "a uid not allowed is refused with EACCES and a logged reason, and gets nothing" {
	serve --allow-uid 12345
	# the socket is 0600 for uid 12345: 65534 cannot even connect
	run as_nobody "$CHECK" sidecar_data_path
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* || "$output" == *"not allowed"* ]]
	# with the file open to all, SO_PEERCRED still refuses
	chmod 666 "$SOCK"
	run as_nobody "$CHECK" sidecar_data_path
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"uid 65534 is not allowed to use mux '$MUX'"* ]]
	log_has "^refused client pid [0-9]+ uid 65534: uid 65534 is not in --allow-uid"
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq '.[0].members | length')" = 0 ]
}

@test "garbage, truncated, oversized and unknown requests get errors; others are served" {
	serve --allow-uid 65534 --json
	check_passes sidecar_garbage
	kill -0 "$SERVE_PID"
	# --json: one object per line
	log_has '"event":"refused"'
	jq -s -e 'any(.[]; .event == "refused" and .uid == 65534 and
		(.detail | test("not a kcm-bpf sidecar request")))' "$TMP/log" >/dev/null
	jq -e . "$TMP/log" >/dev/null
}

@test "a client that dies holding KCM sockets and a transport: both dropped" {
	serve --allow-uid 65534
	run as_nobody "$CHECK" sidecar_die
	echo "$output"
	[[ "$output" == *"dying with 2 KCM sockets and 1 transport"* ]]
	log_has "^gone client pid [0-9]+ uid 65534: disconnected: closed 2 KCM sockets, unattached 1 transports"
	run "$LOADER" status "$MUX" --json
	echo "$output"
	[ "$(echo "$output" | jq '.[0].members | length')" = 0 ]
	[ "$(echo "$output" | jq '[.[0].transports[] | select(.state == "attached")] | length')" = 0 ]
}

@test "socket permissions follow the allow list" {
	serve
	[ "$(stat -c '%a %u' "$SOCK")" = "600 0" ]
	kill "$SERVE_PID"; wait "$SERVE_PID" || true
	serve --allow-uid 65534
	[ "$(stat -c '%a %u' "$SOCK")" = "600 65534" ]
	kill "$SERVE_PID"; wait "$SERVE_PID" || true
	serve --allow-gid 65534
	[ "$(stat -c '%a %g' "$SOCK")" = "660 65534" ]
	kill "$SERVE_PID"; wait "$SERVE_PID" || true
	serve --allow-uid 65534,1000
	[ "$(stat -c '%a' "$SOCK")" = "666" ]
}

@test "SIGTERM destroys the mux and removes the socket; after SIGKILL clean does" {
	serve --allow-uid 65534
	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID"
	[ ! -e "$SOCK" ]
	[ ! -d "/sys/fs/bpf/kcm/$MUX" ]
	log_has "^stopped: mux $MUX destroyed"
	serve --allow-uid 65534
	kill -KILL "$SERVE_PID"
	wait "$SERVE_PID" || true
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].state')" = orphaned ]
	run "$LOADER" clean
	[ "$status" -eq 0 ]
	[ ! -d "/sys/fs/bpf/kcm/$MUX" ]
	# the socket file left behind is taken over by the next sidecar
	[ -S "$SOCK" ]
	serve --allow-uid 65534
	check_passes sidecar_refusals
}

@test "kcm_mux_connect waits for the socket, then ETIMEDOUT naming the path" {
	KCM_SIDECAR_WAIT=1 run as_nobody "$CHECK" sidecar_data_path
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no sidecar answered at $SOCK within 1 s (no such socket)"* ]]
	[[ "$output" == *ETIMEDOUT* || "$output" == *"timed out"* ]]
}

@test "serve's usage errors name the option" {
	run "$LOADER" serve "$MUX"
	[ "$status" -eq 2 ]
	[[ "$output" == *"--socket PATH is needed"* ]]
	run "$LOADER" serve "$MUX" --socket "$SOCK" --allow-uid nobody
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --allow-uid 'nobody'"* ]]
}

@test "the sidecar suite leaves no pins, sockets or processes behind" {
	common_teardown
	[ -z "$(ls /sys/fs/bpf/kcm 2>/dev/null | grep "^kcmt-sc-$$-")" ]
	! pgrep -f "kcm-loader serve kcmt-sc-$$-" >/dev/null
}
