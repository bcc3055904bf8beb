# Shared setup for the bats suites: build paths, root check, network namespaces joined by
# a veth pair, background processes that are always reaped.
# shellcheck shell=bash

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
LOADER=$BUILD/kcm-loader
PROGS=$BUILD/tests
# Bounds on CPU time and latency are multiplied by this where the CPU is emulated
# (scripts/guest.sh sets it under TCG, which runs every instruction 5-20x slower).
SCALE=${KCM_TEST_SCALE:-1}

require_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root: BPF (CAP_BPF, CAP_NET_ADMIN) and network namespaces"
	[ -x "$LOADER" ] || skip "not built: run make first"
	# every KCM socket needs this; kernels before 5.15 lack it (check.bats tests that)
	[ -n "${KCM_NO_FEATURE_SKIP:-}" ] || require_feature unix-members
}

# feature_state NAME: "STATE: what it saw" from `kcm-loader check`, checked once per run
# (run-tests.sh checks once for all the suites: $KCM_CHECK_JSON).
feature_state() {
	local cache=${KCM_CHECK_JSON:-${BATS_RUN_TMPDIR:-/tmp}/kcm-check.json}
	# check exits 1 when something is missing: that is an answer, not a failure
	[ -s "$cache" ] || "$LOADER" check --json >"$cache" 2>/dev/null || true
	jq -r --arg n "$1" '.[] | select(.name == $n) | "\(.state): \(.seen)"' "$cache"
}

# has_feature NAME: `kcm-loader check` reports NAME ok on this kernel.
has_feature() { [[ $(feature_state "$1") == ok:* ]]; }

# require_feature NAME: skip unless `kcm-loader check` reports NAME ok, with what it saw.
require_feature() {
	local state
	state=$(feature_state "$1")
	[[ $state == ok:* ]] || skip "this kernel: $1 ${state:-not reported by kcm-loader check}"
}

# require_one_per_redirect: UDP KCM sockets whose FIONREAD counts each message, which
# transports with parsers of their own need (not on Linux 6.1, where a parser mux splits
# with its own parser instead: --split prog).
require_one_per_redirect() { require_feature udp-members; }

# netns_setup: two namespaces, client 10.99.N.1 and server 10.99.N.2, joined by veth.
# Sets NS_C, NS_S, IP_C, IP_S. Names start with kcmt- so leak checks can find strays.
netns_setup() {
	local n=$(( (BATS_SUITE_TEST_NUMBER + $$) % 200 + 20 ))
	NS_C=kcmt-$$-$BATS_SUITE_TEST_NUMBER-c
	NS_S=kcmt-$$-$BATS_SUITE_TEST_NUMBER-s
	IP_C=10.99.$n.1
	IP_S=10.99.$n.2
	ip netns add "$NS_C"
	ip netns add "$NS_S"
	ip link add kv$$c$n netns "$NS_C" type veth peer name kv$$s$n netns "$NS_S"
	ip -n "$NS_C" addr add "$IP_C/24" dev kv$$c$n
	ip -n "$NS_S" addr add "$IP_S/24" dev kv$$s$n
	ip -n "$NS_C" link set kv$$c$n up
	ip -n "$NS_S" link set kv$$s$n up
	ip -n "$NS_C" link set lo up
	ip -n "$NS_S" link set lo up
	VETH_C=kv$$c$n
	VETH_S=kv$$s$n
}

# nsenter keeps our mounts (ip netns exec remounts /sys and hides bpffs).
in_client() { nsenter --net=/run/netns/"$NS_C" "$@"; }
in_server() { nsenter --net=/run/netns/"$NS_S" "$@"; }

BG_PIDS=()
# bg_run [in_client|in_server] CMD...: start in the background, remember the pid in
# BG_PID. nsenter is called directly (it execs CMD): backgrounding the in_* functions
# would fork a subshell, and killing that would orphan the program.
bg_run() {
	case $1 in
	in_client) shift; set -- nsenter --net=/run/netns/"$NS_C" "$@" ;;
	in_server) shift; set -- nsenter --net=/run/netns/"$NS_S" "$@" ;;
	esac
	"$@" &
	BG_PID=$!
	BG_PIDS+=("$BG_PID")
}

# wait_for_file PATH [SECONDS]: a program signals readiness by creating PATH (the wait,
# like every give-up limit here, is multiplied by SCALE).
wait_for_file() {
	local i
	for ((i = 0; i < ${2:-10} * 20 * SCALE; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $1" >&2
	return 1
}

# wait_listen PORT: until something listens on $IP_S:PORT in the server's namespace (a
# client started before that is refused).
wait_listen() {
	local i
	for ((i = 0; i < 100 * SCALE; i++)); do
		[ -n "$(in_server ss -Htln src "$IP_S" sport = :"$1")" ] && return 0
		sleep 0.05
	done
	echo "nothing listens on $IP_S:$1"
	return 1
}

# wait_mux_rx MUX N: until mux MUX has received N messages (its counters), at most 10 s times SCALE.
wait_mux_rx() {
	local n=0 i
	for ((i = 0; i < 200 * SCALE; i++)); do
		n=$("$LOADER" status "$1" --json | jq '.[0].counters.rx_msgs')
		[ "$n" -ge "$2" ] && return 0
		sleep 0.05
	done
	echo "mux $1 received $n of $2 messages"
	return 1
}

# common_teardown: kill what the test started, remove namespaces and its pins.
common_teardown() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	BG_PIDS=()
	[ -n "${NS_C:-}" ] && ip netns del "$NS_C" 2>/dev/null
	[ -n "${NS_S:-}" ] && ip netns del "$NS_S" 2>/dev/null
	NS_C= NS_S=
	if [ -n "${MUX:-}" ] && [ -d "/sys/fs/bpf/kcm/$MUX" ]; then
		"$LOADER" destroy "$MUX" >/dev/null 2>&1
	fi
	return 0
}
