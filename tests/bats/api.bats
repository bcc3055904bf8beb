#!/usr/bin/env bats
# libkcm's documented API semantics: framing unit tests (no root) and api_check, which
# runs named subtests on loopback TCP pairs. Each test asserts exit 0 and its PASS lines.
# shellcheck shell=bash

load helpers

setup_file() {
	# api_check's pinned muxes go through libkcm, which mounts nothing (kcm-loader does):
	# give it the bpffs that systemd mounts at boot, which a machine without it lacks
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
}

teardown() {
	common_teardown
	# api_check pins apitest-<pid> and removes it; clean up after one that crashed
	local d pid
	for d in /sys/fs/bpf/kcm/apitest-*; do
		[ -d "$d" ] || continue
		pid=${d##*-}
		kill -0 "$pid" 2>/dev/null || rm -rf "$d"
	done
	return 0
}

# api_group FILTER NAME...: run the subtests matching FILTER; each NAME must PASS.
api_group() {
	local filter=$1 name
	shift
	run "$PROGS/api_check" "$filter"
	echo "$output"
	for name in "$@"; do
		[[ "$output" == *"PASS $name"* ]] || { echo "missing: PASS $name"; return 1; }
	done
	[[ "$output" != *"FAIL "* ]]
	[ "$status" -eq 0 ]
}

@test "unit_framing: widths, offsets, adjust, limits, presets, parse errors, round trips" {
	[ -x "$PROGS/unit_framing" ] || skip "not built: run make first"
	run "$PROGS/unit_framing"
	echo "$output"
	local name
	for name in frame_widths_both_orders frame_width_limits frame_offsets frame_adjust \
		frame_header_incomplete frame_below_header_end frame_zero_length_body \
		frame_over_max frame_huge_values frame_max_full_range parse_presets parse_valid \
		parse_errors format parse_format_roundtrip parse_then_measure; do
		[[ "$output" == *"PASS $name"* ]] || { echo "missing: PASS $name"; return 1; }
	done
	[[ "$output" == *"unit_framing: 16 passed, 0 failed"* ]]
	[ "$status" -eq 0 ]
}

@test "api_check: every subtest belongs to a group below" {
	require_root
	run "$PROGS/api_check" -l
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -gt 0 ]
	# each subtest must be one of the names an api_group line below requires to PASS
	local name groups
	groups=$(sed -n '/^\tapi_group /,/[^\\]$/p' "$BATS_TEST_FILENAME")
	for name in "${lines[@]}"; do
		grep -qw -- "$name" <<<"$groups" || { echo "subtest $name is in no group"; return 1; }
	done
}

@test "attach refuses UDP, unix, listening and unconnected sockets and double attach" {
	require_root
	api_group attach_ attach_udp_eopnotsupp attach_unix_eopnotsupp \
		attach_listening_eopnotsupp attach_unconnected_eopnotsupp attach_twice_ealready \
		attach_second_mux_ealready
}

@test "unattach: ENOENT when not attached; a socket can be attached again" {
	require_root
	api_group unattach unattach_never_attached_enoent unattach_twice_enoent
	api_group reattach reattach_after_unattach
}

@test "bytes queued on the TCP socket before attach are delivered" {
	require_root
	api_group queued_before_attach queued_before_attach
}

@test "clone: same mux, round-robin; EBADF on a non-KCM fd" {
	require_root
	api_group clone_ clone_same_mux_round_robin clone_not_kcm_ebadf
}

@test "kcm_close and plain close() leave the group without losing messages" {
	require_root
	api_group close_ kcm_close_leaves_group plain_close_leaves_group plain_close_fd_reuse
}

@test "poll and epoll: readable when a message arrives; MSG_DONTWAIT gives EAGAIN" {
	require_root
	api_group poll poll_readable epoll_readable
	api_group recv_nonblock recv_nonblock_eagain
}

@test "truncation, recvmmsg and sendmmsg" {
	require_root
	api_group recv_truncation recv_truncation
	api_group mmsg recvmmsg_batch recvmmsg_truncates_each sendmmsg_batch
}

@test "recv_disable moves queued messages, keeps them without another member, re-enables" {
	require_root
	api_group recv_disable recv_disable_moves_queued recv_disable_keeps_without_others \
		recv_disable_off_receives_again recv_disable_with_blocked_reader
}

@test "send errors: EMSGSIZE, ENOTCONN, EAGAIN without a partial message" {
	require_root
	api_group send_ send_emsgsize send_enotconn send_nonblock_eagain_whole send_msg_more_composes
}

@test "pinned mux: 0700/0600 pins, open sees the same config, EEXIST, destroy unpins" {
	require_root
	api_group pinned_mux pinned_mux
}

@test "transport options: every one set on the socket, an explicit SO_RCVBUF kept, bad ranges named" {
	require_root
	api_group transport_options transport_options
}

@test "parser programs: ids, refused objects, old option sizes, recvmmsg and recv_disable" {
	require_root
	require_one_per_redirect
	api_group parser_ parser_api parser_recv
}

@test "inspection: state, transports, KCM sockets, programs, counters; stale, incomplete, read only" {
	require_root
	api_group inspect_ inspect_mux
}

@test "kcm_set_print: libbpf's messages go to the function set, nowhere with NULL" {
	require_root
	api_group set_print set_print
}
