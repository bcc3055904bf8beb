#!/usr/bin/env bats
# kcm-loader: command line contract, pins, locking, attach from another process,
# status as the kernel reports it, clean after crashes.

load helpers

setup() {
	require_root
	MUX=kcmt-ld-$$-$BATS_TEST_NUMBER
	TMP=$(mktemp -d)
}

teardown() {
	common_teardown
	# the KCM_BPFFS test's private bpffs, if it failed before unmounting it
	mountpoint -q "$TMP/bpffs" 2>/dev/null && umount "$TMP/bpffs"
	rm -rf "$TMP"
}

@test "help, unknown commands and bad options give exit 0, 2 and 2" {
	run "$LOADER" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"status [NAME] [--json]"* ]]
	run "$LOADER" frobnicate
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown command 'frobnicate'"* ]]
	run "$LOADER" create "$MUX" --batch 1025
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --batch '1025'"* ]]
	run "$LOADER" create "$MUX" --framing u12
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --framing 'u12'"* ]]
	run "$LOADER" create "bad/name"
	[ "$status" -eq 2 ]
	run "$LOADER" status --bogus
	[ "$status" -eq 2 ]
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
}

@test "create pins root-only maps and programs that status finds attached" {
	run "$LOADER" create "$MUX" --framing u16be+2 --max 4K --batch 8 --policy bytes
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "/sys/fs/bpf/kcm/$MUX")" = 700 ]
	for f in transports group steer counters member_counters config transport_info member_info \
		prog_parser prog_verdict prog_requeue; do
		[ "$(stat -c %a "/sys/fs/bpf/kcm/$MUX/$f")" = 600 ]
	done
	run "$LOADER" status "$MUX" --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r '.[0].framing')" = "u16be+2@0" ]
	[ "$(echo "$output" | jq -r '.[0].max_msg')" = 4096 ]
	[ "$(echo "$output" | jq -r '.[0].batch')" = 8 ]
	[ "$(echo "$output" | jq -r '.[0].policy')" = bytes ]
	[ "$(echo "$output" | jq -r '.[0].state')" = ok ]
	[ "$(echo "$output" | jq '[.[0].programs[] | select(.ok)] | length')" = 3 ]
	# the parser scans a batch with bpf_loop where the kernel has it (5.17)
	[[ "$(echo "$output" | jq -r '[.[0].programs[].prog_name] | join(",")')" =~ \
		^kcm_parser(_loop)?,kcm_verdict,kcm_requeue$ ]]
}

@test "bpftool map dump prints the info maps as readable JSON" {
	"$LOADER" create "$MUX"
	# bpftool puts the BTF-typed view of each entry under "formatted"
	run bpftool -j map dump pinned "/sys/fs/bpf/kcm/$MUX/config"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq '.[0].formatted.value.len_size')" = 4 ]
	[ "$(echo "$output" | jq '.[0].formatted.value.len_adjust')" = 4 ]
	run bpftool -j map dump pinned "/sys/fs/bpf/kcm/$MUX/member_info"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq '.[0].formatted.value | has("cookie") and has("enabled")')" = true ]
	run bpftool -j map dump pinned "/sys/fs/bpf/kcm/$MUX/counters"
	[ "$(echo "$output" | jq '.[0].formatted.values[0].value | has("rx_msgs")')" = true ]
	run bpftool map dump pinned "/sys/fs/bpf/kcm/$MUX/steer"
	[[ "$output" == *'"nmembers": 0'* ]]
}

@test "an existing name, a missing mux and a second destroy fail with exit 1" {
	"$LOADER" create "$MUX"
	run "$LOADER" create "$MUX"
	[ "$status" -eq 1 ]
	[[ "$output" == *"failed to create mux '$MUX'"*"File exists"* ]]
	run "$LOADER" destroy "$MUX"
	[ "$status" -eq 0 ]
	run "$LOADER" destroy "$MUX"
	[ "$status" -eq 1 ]
	[[ "$output" == *"no such mux"* ]]
	run "$LOADER" status "$MUX"
	[ "$status" -eq 1 ]
}

@test "eight loaders racing on one name: exactly one creates it" {
	for i in 1 2 3 4 5 6 7 8; do
		(rc=0; "$LOADER" create "$MUX" >"$TMP/out.$i" 2>&1 || rc=$?; echo $rc > "$TMP/rc.$i") &
	done
	wait
	[ "$(cat "$TMP"/rc.* | grep -c '^0$')" -eq 1 ]
	[ "$(cat "$TMP"/rc.* | grep -c '^1$')" -eq 7 ]
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].state')" = ok ]
}

@test "attach --pid --fd: an unmodified app's connection feeds a libkcm process" {
	netns_setup
	# strict per-message round-robin: one message per redirect, a window that never binds
	"$LOADER" create "$MUX" --batch 1 --window 1G
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:7100" --ready-file "$TMP/holder"
	wait_listen 7100
	bg_run in_server "$PROGS/mux_consumer" --open "$MUX" --workers 2 --expect 300 --reply \
		--timeout $((20 * SCALE)) --ready-file "$TMP/consumer" > "$TMP/consumer.json"
	consumer=$BG_PID
	wait_for_file "$TMP/consumer"
	# its two KCM sockets, before any traffic: once the 300 replies are out it exits, and
	# on a slow machine (a qemu guest) that can happen before a status after the attach
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq '.[0].members | length')" = 2 ]
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7100" --conns 1 --count 300 \
		--size 12:2000 --mode each --replies --json
	client=$BG_PID
	wait_for_file "$TMP/holder"
	read -r pid fd < "$TMP/holder"
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" --json
	[ "$status" -eq 0 ]
	cookie=$(echo "$output" | jq .cookie)
	[ "$cookie" -gt 0 ]
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r ".[0].transports[0].cookie")" = "$cookie" ]
	[ "$(echo "$output" | jq -r ".[0].transports[0].state")" = attached ]
	wait "$consumer"
	wait "$client"
	# every request reached exactly one worker, split evenly, and every reply came back
	# (evenly within 2: a reply in flight can reorder two requests' arrival, measured)
	jq -c .workers "$TMP/consumer.json"
	[ "$(jq '.workers | add' "$TMP/consumer.json")" = 300 ]
	jq -e '.workers | all(. >= 148 and . <= 152)' "$TMP/consumer.json"
	[ "$(jq .corrupt "$TMP/consumer.json")" = 0 ]
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq '.[0].counters.rx_msgs')" = 300 ]
	[ "$(echo "$output" | jq '.[0].counters.rx_drops')" = 0 ]
	run "$LOADER" unattach "$MUX" --cookie "$cookie"
	[ "$status" -eq 0 ]
	run "$LOADER" unattach "$MUX" --cookie "$cookie"
	[ "$status" -eq 1 ]
	[[ "$output" == *"not attached"* ]]
}

@test "attach errors name the process, the fd and the cause" {
	"$LOADER" create "$MUX"
	sleep 30 &
	sleeper=$!
	BG_PIDS+=("$sleeper")
	run "$LOADER" attach "$MUX" --pid "$sleeper" --fd 77
	[ "$status" -eq 1 ]
	[[ "$output" == *"failed to take fd 77 of process $sleeper: it has no such fd"* ]]
	run "$LOADER" attach "$MUX" --pid "$sleeper" --fd 1
	[ "$status" -eq 1 ]
	[[ "$output" == *"fd 1 of pid $sleeper"* ]]
	run "$LOADER" attach "$MUX" --pid 4000000 --fd 1
	[ "$status" -eq 1 ]
	[[ "$output" == *"no such process"* ]]
	run "$LOADER" attach "$MUX" --pid "$sleeper"
	[ "$status" -eq 2 ]
	run "$LOADER" attach "kcmt-none-$$" --pid "$$" --fd 0
	[ "$status" -eq 1 ]
}

@test "status shows a mux whose program was killed as orphaned; clean removes it" {
	bg_run "$PROGS/mux_consumer" --create "$MUX" --workers 2 --hold --ready-file "$TMP/ready"
	wait_for_file "$TMP/ready"
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].state')" = ok ]
	[ "$(echo "$output" | jq '.[0].members | length')" = 2 ]
	kill -9 "$BG_PID"
	wait "$BG_PID" || true
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].state')" = orphaned ]
	[ "$(echo "$output" | jq '.[0].members | map(select(.state == "stale")) | length')" = 2 ]
	run "$LOADER" clean --dry-run
	[[ "$output" == *"would remove mux '$MUX'"* ]]
	[ -d "/sys/fs/bpf/kcm/$MUX" ]
	run "$LOADER" clean
	[ "$status" -eq 0 ]
	[[ "$output" == *"removed mux '$MUX': owner pid"* ]]
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
}

@test "clean removes an incomplete folder left by a crashed create" {
	"$LOADER" create "$MUX"
	rm "/sys/fs/bpf/kcm/$MUX/steer"
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].state')" = incomplete ]
	run "$LOADER" clean
	[[ "$output" == *"removed mux '$MUX': incomplete: no steer"* ]]
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
}

@test "create mounts bpffs when it is missing" {
	# a private mount namespace: unmounting bpffs there leaves the host alone
	run unshare -m --propagation private sh -c "umount /sys/fs/bpf &&
		! grep -q ' /sys/fs/bpf bpf' /proc/mounts &&
		'$LOADER' create '$MUX' && grep -q ' /sys/fs/bpf bpf' /proc/mounts &&
		'$LOADER' status '$MUX' --json && '$LOADER' destroy '$MUX'"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"state":"ok"'* ]]
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
}

@test "without privileges create fails with exit 1 and says what is missing" {
	run setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$LOADER" create "$MUX"
	[ "$status" -eq 1 ]
	[[ "$output" == *"failed to create mux '$MUX'"* ]]
	[[ "$output" == *"root"* || "$output" == *"CAP_"* ]]
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
	# status must not pretend there are no muxes when it cannot read them
	"$LOADER" create "$MUX"
	run setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$LOADER" status
	[ "$status" -eq 1 ]
	[[ "$output" == *"failed to read /sys/fs/bpf/kcm: Permission denied"* ]]
}

@test "attach --keepalive --user-timeout --nodelay --linger set the options on the app's socket" {
	netns_setup
	"$LOADER" create "$MUX"
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:7110" --ready-file "$TMP/holder"
	wait_listen 7110
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7110" --count 0 --hold 30
	wait_for_file "$TMP/holder"
	read -r pid fd < "$TMP/holder"
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" --keepalive 9,3,4 --user-timeout 2500 \
		--nodelay --linger abort --rcvtimeo 1500
	[ "$status" -eq 0 ]
	# the kernel now runs a keepalive timer on it (idle 9 s); nothing else set one
	run in_server ss -tno state established '( sport = :7110 )'
	[[ "$output" == *"timer:(keepalive"* ]]
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" --keepalive 9,3,400
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid --keepalive '9,3,400'"* ]]
	run "$LOADER" unattach "$MUX" --pid "$pid" --fd "$fd" --nodelay
	[ "$status" -eq 2 ]
}

# json_only CMD...: stdout is JSON lines that jq accepts (no text), stderr kept apart
json_only() {
	local out=$TMP/json.out err=$TMP/json.err rc=0
	"$LOADER" "$@" >"$out" 2>"$err" || rc=$?
	echo "$* -> exit $rc: $(cat "$out") [stderr: $(cat "$err")]"
	[ -s "$out" ]
	jq . "$out" >/dev/null # parses (jq -e would refuse null)
	return $rc
}

@test "-j: every command prints JSON only; failures are {\"error\": ...} with exit 1" {
	json_only -j create "$MUX"
	[ "$(jq -r .name "$TMP/json.out")" = "$MUX" ]
	json_only -j status "$MUX"
	json_only -j stats "$MUX"
	json_only -j parsers
	json_only -j check || true # exits 1 when a feature is missing
	json_only -j clean --dry-run
	json_only -j destroy "$MUX"
	[ "$(cat "$TMP/json.out")" = null ]
	# failures: the message in "error", nothing on stderr but libbpf's own
	run json_only -j destroy "$MUX"
	[ "$status" -eq 1 ]
	jq -e '.error | contains("no such mux")' "$TMP/json.out"
	run json_only -j status "$MUX"
	[ "$status" -eq 1 ]
	jq -e '.error | contains("no mux named")' "$TMP/json.out"
	run json_only -j create "$MUX" --prog "$TMP/missing.bpf.o"
	[ "$status" -eq 1 ]
	# a missing object is not a missing mux: no hint about muxes
	jq -e '(.error | contains("cannot read parser object")) and (has("hint") | not)' \
		"$TMP/json.out"
	"$LOADER" create "$MUX"
	run json_only -j unattach "$MUX" --cookie 12345
	[ "$status" -eq 1 ]
	jq -e '.error | contains("not attached")' "$TMP/json.out"
	run json_only -j attach "$MUX" --pid $$ --fd 99
	[ "$status" -eq 1 ]
	jq -e '.error | length > 0' "$TMP/json.out"
	json_only -j monitor "$MUX" --duration 1 --stats-cost
	jq -e 'select(.stats_cost) | .stats_cost.run_cnt >= 0' "$TMP/json.out"
	"$LOADER" destroy "$MUX"
	json_only -j clean
	[ "$(cat "$TMP/json.out")" = "[]" ]
}

@test "messages name what the user gave: the owner's fd, libbpf's reason, the option" {
	"$LOADER" create "$MUX"
	sleep 30 &
	local sp=$!
	# fd 1 of a sleeping shell is no socket: the message names fd 1 of that pid, not the
	# loader's own copy of it
	run "$LOADER" attach "$MUX" --pid "$sp" --fd 1
	kill "$sp"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"fd 1 of pid $sp cannot be attached: Socket operation on non-socket"* ]]
	[[ "$output" != *"fd 3 "* && "$output" != *"fd 4 "* && "$output" != *"fd 5 "* ]]
	# a file that is not ELF: libbpf's words, not "Unknown error 4001"
	echo "not an object" >"$TMP/notelf.o"
	run "$LOADER" create "$MUX-b" --prog "$TMP/notelf.o"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"BPF object format invalid"* ]]
	[[ "$output" != *"Unknown error"* ]]
	# a missing argument is not an unknown option
	run "$LOADER" create "$MUX-b" --max
	[ "$status" -eq 2 ]
	[[ "$output" == *"option '--max' needs an argument"* ]]
	run "$LOADER" stats --nosuch
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '--nosuch'"* ]]
	run "$LOADER" -x status
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown option '-x'"* ]]
}

@test "help COMMAND, -v and -p anywhere, -p's JSON parses, undocumented short options refused" {
	run "$LOADER" help
	[ "$status" -eq 0 ]
	[[ "$output" == *"help [COMMAND]"* ]]
	run "$LOADER" help stats
	[ "$status" -eq 0 ]
	[[ "$output" == *"Usage: kcm-loader stats"* ]]
	run "$LOADER" help nosuch
	[ "$status" -eq 2 ]
	# -v after the command is taken, not refused
	run "$LOADER" status -v
	[ "$status" -eq 0 ]
	"$LOADER" create "$MUX"
	# -p: indented JSON, the same document as -j
	run "$LOADER" status "$MUX" -p
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -gt 10 ]
	[[ "${lines[1]}" == '  {' ]]
	[ "$(jq -c . <<<"$output")" = "$("$LOADER" -j status "$MUX" | jq -c .)" ]
	# short options no help text names
	for args in "clean -a" "stats -w 1" "monitor $MUX -d 1"; do
		run "$LOADER" $args
		[ "$status" -eq 2 ]
		[[ "$output" == *"unknown option"* ]]
	done
}

@test "KCM_BPFFS: a private bpffs holds the muxes; libkcm mounts none unless asked" {
	mkdir -p "$TMP/bpffs" "$TMP/plain"
	mount -t bpf bpf "$TMP/bpffs"
	KCM_BPFFS=$TMP/bpffs "$LOADER" create "$MUX"
	[ -d "$TMP/bpffs/kcm/$MUX" ]
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
	run env KCM_BPFFS="$TMP/bpffs" "$LOADER" -j status "$MUX"
	[ "$status" -eq 0 ]
	[ "$(jq -r '.[0].state' <<<"$output")" = ok ]
	run "$LOADER" status "$MUX"
	[ "$status" -eq 1 ]
	KCM_BPFFS=$TMP/bpffs "$LOADER" destroy "$MUX"
	[ ! -e "$TMP/bpffs/kcm" ]
	umount "$TMP/bpffs"
	# a library pin where no bpffs is: refused, naming the place (kcm_server pins with
	# libkcm, which mounts nothing unless kcm_mux_opts.mount_bpffs asks)
	run env KCM_BPFFS="$TMP/plain" "$PROGS/kcm_server" --listen 127.0.0.1:0 --pin "$MUX" \
		--conns 1 --timeout $((5 * SCALE))
	[ "$status" -ne 0 ]
	[[ "$output" == *"no bpf filesystem at $TMP/plain"* ]]
	[ -z "$(ls -A "$TMP/plain")" ]
}

@test "bash completion: commands, each command's options, mux names, parsers" {
	"$LOADER" create "$MUX"
	comp() {
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMPREPLY=()
		_kcm_loader
		echo "${COMPREPLY[*]}"
	}
	PATH=$(dirname "$LOADER"):$PATH
	# shellcheck source=/dev/null
	source "$TOP/user/loader/kcm-loader.bash"
	[ "$(comp kcm-loader st)" = "status stats" ]
	[ "$(comp kcm-loader stats --wa)" = "--watch" ]
	[ "$(comp kcm-loader connect x --backoff-m)" = "--backoff-max --backoff-min" ]
	[ "$(comp kcm-loader create x --frame thr)" = "thrift" ]
	[ "$(comp kcm-loader help moni)" = "monitor" ]
	[[ " $(comp kcm-loader -j status "${MUX:0:9}") " == *" $MUX "* ]]
	[ -z "$(comp kcm-loader create "${MUX:0:9}")" ] # a new name: nothing to offer
}
