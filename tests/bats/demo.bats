#!/usr/bin/env bats
# scripts/demo.sh, what `make demo` runs on a fresh machine: real traffic through a mux
# between two namespaces, every reply verified, nothing left behind.

load helpers

setup() {
	require_root
	TMP=$(mktemp -d)
}

teardown() {
	rm -rf "$TMP"
}

# demo_leftovers: the demo's namespaces, pins (named kcmdemo-*) and processes
demo_leftovers() {
	{
		ip netns list | awk '/^kcmdemo-/ {print $1}'
		ls /sys/fs/bpf/kcm 2>/dev/null | grep '^kcmdemo-'
		pgrep -af "$PROGS/kcm_(server|client) .*10\.123\.0\.2:7000"
	} || true
}

@test "the demo verifies every echoed message and leaves nothing behind" {
	run "$TOP/scripts/demo.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"demo: verified: 20000 messages, each at exactly one worker, every reply intact"* ]]
	# status showed the mux while the messages flowed: 4 transports, 4 KCM sockets
	[[ "$output" == *"kcmdemo-"* ]]
	# every one of the 4 workers received some
	[ "$(grep -cE '^server: worker [0-3]: [1-9][0-9]* messages' <<<"$output")" -eq 4 ]
	[ -z "$(demo_leftovers)" ]
}

@test "the demo with batching and other sizes" {
	run "$TOP/scripts/demo.sh" --conns 2 --workers 3 --count 3000 --size 12:100 --batch 16
	[ "$status" -eq 0 ]
	[[ "$output" == *"demo: verified: 6000 messages"* ]]
	[ -z "$(demo_leftovers)" ]
}

@test "the demo: --help exits 0, an unknown option exits 2 and is named" {
	run "$TOP/scripts/demo.sh" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--conns N"* ]]
	run "$TOP/scripts/demo.sh" --no-such-option
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '--no-such-option'"* ]]
	# bodies too short to carry the ids that tell replies apart (it once ran, and failed)
	run "$TOP/scripts/demo.sh" --size 1:100
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --size '1:100'"*"at least 12"* ]]
	run "$TOP/scripts/demo.sh" --conns 0
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --conns '0'"* ]]
	[ -z "$(demo_leftovers)" ]
}

@test "the demo, stopped, removes its namespaces, mux and processes" {
	"$TOP/scripts/demo.sh" --count 200000 >"$TMP/out" 2>&1 &
	local pid=$! i
	for ((i = 0; i < 200 * SCALE; i++)); do
		grep -q "status while the messages flow" "$TMP/out" && break
		sleep 0.05
	done
	[ -n "$(demo_leftovers)" ]
	# (a background job ignores SIGINT; a terminal's Ctrl-C takes the same trap)
	kill -TERM "$pid"
	local rc=0 t0=$SECONDS
	wait "$pid" || rc=$?
	cat "$TMP/out"
	[ "$rc" -eq 130 ]
	# it stops at once: the server's workers answered what was queued for a client that
	# had gone, and each reply scanned every transport slot (16-28 s, seen half the time).
	# Not asserted on an emulated CPU: a 6.12 guest took 2 s alone, but 204 s while three
	# other guests shared the 2 CPUs (not understood; docs/kernels.md).
	echo "# stopped $((SECONDS - t0)) s after SIGTERM" >&3
	[ "$SCALE" -gt 1 ] || [ $((SECONDS - t0)) -le 3 ]
	for ((i = 0; i < 50; i++)); do [ -z "$(demo_leftovers)" ] && break; sleep 0.1; done
	[ -z "$(demo_leftovers)" ]
}
