#!/usr/bin/env bats
# kcm-loader check: every check does the real thing, reports what it saw, and says what to
# do; the exit status says whether kcm-bpf can do all it does. Negative controls take the
# privileges or the bpffs away and expect the checks to say so.

load helpers

NAMES='["kernel","privileges","bpffs","btf","sockmap","stream-parser","sk-msg","unix-members","udp-members","data-plane","monitor","af-kcm","monitor-arm","monitor-trace"]'

setup() {
	KCM_NO_FEATURE_SKIP=1 require_root # this suite reports what the kernel lacks
	TMP=$(mktemp -d)
}

teardown() {
	[ -z "${NS:-}" ] || ip netns del "$NS" 2>/dev/null || true
	[ -z "${MUX:-}" ] || "$LOADER" destroy "$MUX" >/dev/null 2>&1 || true
	[ -z "${MUX:-}" ] || "$LOADER" destroy "$MUX-p" >/dev/null 2>&1 || true
	rm -rf "$TMP"
}

# state NAME: what the last `check --json` ($TMP/check.json) said of NAME.
state() { jq -r --arg n "$1" '.[] | select(.name == $n) | .state' "$TMP/check.json"; }

@test "as root: every check runs in order, and the exit status says whether one is missing" {
	run "$LOADER" check --json
	echo "$output"
	echo "$output" >"$TMP/check.json"
	echo "$output" | jq -e --argjson n "$NAMES" '[.[].name] == $n'
	echo "$output" | jq -e 'all(.[]; (.seen | length) > 0 and (.needed_for | length) > 0)'
	echo "$output" | jq -e 'all(.[]; .state != "unknown")' # root: everything was tried
	echo "$output" | jq -e 'all(.[] | select(.state == "missing"); .fix | length > 0)'
	echo "$output" | jq -e --arg r "$(uname -r)" '.[0].seen | contains($r)'
	if echo "$output" | jq -e 'any(.[]; .state == "missing")' >/dev/null; then
		[ "$status" -eq 1 ]
	else
		[ "$status" -eq 0 ]
	fi
	run "$LOADER" check
	[[ "$output" == *"stream-parser  ok"* ]]
}

@test "what check reports matches what works on this kernel" {
	"$LOADER" check --json >"$TMP/check.json" || true
	[ "$(state data-plane)" = ok ]
	MUX=kcmt-check-$$
	run "$LOADER" create "$MUX"
	echo "$output"
	[ "$status" -eq 0 ]
	# monitor arms transports, or says why it cannot and watches through tracepoints
	run "$LOADER" monitor "$MUX" --duration 1 --ready-file "$TMP/armed" --stats-cost --json
	echo "monitor-arm $(state monitor-arm): $output"
	"$LOADER" destroy "$MUX"
	if [ "$(state monitor-arm)" = ok ]; then
		[ "$status" -eq 0 ] && [ -e "$TMP/armed" ]
		[[ "$output" == *'"path":"sock_ops"'* ]] && [[ "$output" != *tracepoints* ]]
	elif [ "$(state monitor-trace)" = ok ]; then
		[ "$status" -eq 0 ] && [ -e "$TMP/armed" ]
		[[ "$output" == *'"path":"tracing"'* ]]
		[[ "$output" == *"cannot arm transports here"*"through tracepoints"* ]]
	else
		[ "$status" -eq 1 ] && [ ! -e "$TMP/armed" ]
		[[ "$output" == *"monitor cannot run on this kernel"*"monitor-trace"* ]]
	fi
	# KCM sockets of a length-prefix mux (AF_UNIX members)
	NS=kcmt-check-$$
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	run timeout 20 nsenter --net=/run/netns/"$NS" "$PROGS/kcm_server" \
		--listen 127.0.0.1:7300 --conns 1 --timeout 1
	echo "unix-members $(state unix-members): $output"
	if [ "$(state unix-members)" = ok ]; then # its workers ran (and timed out idle)
		[[ "$output" == *"worker 0: 0 messages"* ]]
	else
		[[ "$output" != *"worker 0:"* ]] && [[ "$output" == *"Operation not supported"* ]]
	fi
	# a parser mux without a splitter: one message per redirect to UDP members read with
	# FIONREAD, or else the parser splits for itself
	run "$LOADER" create "$MUX-p" --prog "$BUILD/parsers/thrift.bpf.o"
	echo "udp-members $(state udp-members): $output"
	[ "$status" -eq 0 ]
	run "$LOADER" status "$MUX-p" --json
	"$LOADER" destroy "$MUX-p"
	echo "$output"
	if [ "$(state udp-members)" = ok ]; then
		echo "$output" | jq -e '.[0].splitter == null'
	else
		echo "$output" | jq -e '.[0].splitter == "prog"'
	fi
}

@test "without privileges: privileges missing, bpf() checks unknown (not ok), exit 1" {
	run setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$LOADER" check --json
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | jq -e '.[] | select(.name == "privileges") |
		.state == "missing" and (.seen | contains("CAP_BPF")) and (.seen | contains("CAP_NET_ADMIN"))'
	echo "$output" | jq -e '[.[] | select(.name == "sockmap" or .name == "stream-parser" or
		.name == "data-plane") | .state] == ["unknown","unknown","unknown"]'
	echo "$output" | jq -e 'all(.[] | select(.state == "missing" or .state == "unknown"); .fix | length > 0)'
}

@test "without a bpffs: bpffs missing with the mount command, exit 1" {
	run unshare -m sh -c 'umount -l /sys/fs/bpf && exec "$0" check --json' "$LOADER"
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | jq -e '.[] | select(.name == "bpffs") |
		.state == "missing" and (.fix | contains("mount -t bpf"))'
	# the rest does not depend on it
	echo "$output" | jq -e '.[] | select(.name == "stream-parser") | .state == "ok"'
}

@test "command line: --help exits 0, unknown options and arguments exit 2" {
	run "$LOADER" check --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"Usage: kcm-loader check"* ]]
	run "$LOADER" check --bogus
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option"* ]]
	run "$LOADER" check extra
	[ "$status" -eq 2 ]
	[[ "$output" == *"takes no arguments"* ]]
}
