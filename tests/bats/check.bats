#!/usr/bin/env bats
# kcm-loader check: every check does the real thing, reports what it saw, and says what to
# do; the exit status says whether kcm-bpf can do all it does. Negative controls take the
# privileges or the bpffs away and expect the checks to say so.

load helpers

NAMES='["kernel","privileges","bpffs","btf","sockmap","stream-parser","sk-msg","unix-members","udp-members","data-plane","monitor","af-kcm","monitor-arm"]'

setup() {
	require_root
	TMP=$(mktemp -d)
}

teardown() {
	rm -rf "$TMP"
}

@test "as root: every check runs in order, the needed ones pass, exit 0" {
	run "$LOADER" check --json
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | jq -e --argjson n "$NAMES" '[.[].name] == $n'
	echo "$output" | jq -e 'all(.[]; .state == "ok" or .state == "info")'
	echo "$output" | jq -e 'all(.[]; (.seen | length) > 0 and (.needed_for | length) > 0)'
	echo "$output" | jq -e --arg r "$(uname -r)" '.[0].seen | contains($r)'
	run "$LOADER" check
	[ "$status" -eq 0 ]
	[[ "$output" == *"stream-parser  ok"* ]]
	[[ "$output" == *"kcm-bpf can do all it does on this system"* ]]
}

@test "what check reports matches what works: a mux is created and destroyed" {
	run "$LOADER" check --json
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.[] | select(.name == "data-plane") | .state == "ok"'
	# the same things for real: create, a KCM socket, destroy
	MUX=kcmt-check-$$
	run "$LOADER" create "$MUX"
	echo "$output"
	[ "$status" -eq 0 ]
	run "$LOADER" destroy "$MUX"
	[ "$status" -eq 0 ]
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
