#!/usr/bin/env bats
# The shipped parser objects (bpf/parsers/) against valid, truncated, oversized and
# malformed input (tests/api/parser_check.c), and the SDK's reason to exist: a parser
# that reads at skb offset 0 loses messages written back to back; the SDK's does not.
# shellcheck shell=bash

load helpers

PARSERS=(thrift dns http2 kafka memcached mqtt)
# every case of parser_check; h2_preface is a skip for the other protocols
CASES=(valid truncated_header truncated_body truncated_then_eof trickle pipelined zero_length
	max_length over_max bad_frames random_bytes h2_preface)

setup() {
	require_root
	[ -x "$PROGS/parser_check" ] || skip "not built: run make first"
}

teardown() {
	common_teardown
}

# check_parser NAME [OBJ]: every case of parser_check runs and passes for parser NAME.
check_parser() {
	local obj=${2:-$BUILD/parsers/$1.bpf.o} c
	[ -r "$obj" ] || { echo "missing $obj: run make"; return 1; }
	run "$PROGS/parser_check" --prog "$obj"
	echo "$output"
	for c in "${CASES[@]}"; do
		grep -qE "^ok [0-9]+ $c( |$)" <<<"$output" || { echo "missing: ok $c"; return 1; }
	done
	[[ "$output" != *"not ok"* ]]
	[[ "$output" == *"parser_check $1 ($obj): ${#CASES[@]} passed, 0 failed"* ]]
	[ "$status" -eq 0 ]
}

# pipelined OBJ N: sets SENT, DELIVERED, INTACT, CORRUPT from parser_check --pipelined.
pipelined() {
	run "$PROGS/parser_check" --prog "$1" --proto thrift --pipelined "$2"
	echo "$output"
	[ "$status" -eq 0 ]
	local re='^pipelined: sent ([0-9]+) .* delivered ([0-9]+) .* intact ([0-9]+) '
	re+='corrupt ([0-9]+)$'
	[[ "$output" =~ $re ]] || { echo "no counts in the output"; return 1; }
	SENT=${BASH_REMATCH[1]} DELIVERED=${BASH_REMATCH[2]}
	INTACT=${BASH_REMATCH[3]} CORRUPT=${BASH_REMATCH[4]}
}

@test "every parser in bpf/parsers is checked here" {
	local src name
	for src in "$TOP"/bpf/parsers/*.bpf.c; do
		name=$(basename "$src" .bpf.c)
		[[ " ${PARSERS[*]} " == *" $name "* ]] || { echo "$name has no check"; return 1; }
		grep -q "^@test \"$name: " "$BATS_TEST_FILENAME" ||
			{ echo "$name has no test"; return 1; }
	done
	run "$PROGS/parser_check" -l
	[ "$status" -eq 0 ]
	[ "${lines[*]}" = "${CASES[*]}" ]
}

@test "thrift: size 0 delivered, negative and u32-wrapping sizes EBADMSG, others unharmed" {
	check_parser thrift
	[[ "$output" == *"zero_length: delivered 4 bytes"* ]]
	[[ "$output" == *"bad_size_wraps_u32: SO_ERROR EBADMSG"* ]]
}

@test "dns: below the 12-byte header EBADMSG (length 0 too), 16 KiB messages whole" {
	check_parser dns
	[[ "$output" == *"zero_length: SO_ERROR EBADMSG"* ]]
	[[ "$output" == *"bad_below_dns_header: SO_ERROR EBADMSG"* ]]
}

@test "http2: preface as its own message, held while partial; SETTINGS ACK delivered" {
	check_parser http2
	[[ "$output" == *"zero_length: delivered 9 bytes"* ]]
	grep -qE '^ok [0-9]+ h2_preface$' <<<"$output"
}

@test "kafka: negative sizes and sizes below a correlation id EBADMSG" {
	check_parser kafka
	[[ "$output" == *"zero_length: SO_ERROR EBADMSG"* ]]
	[[ "$output" == *"bad_below_correlation_id: SO_ERROR EBADMSG"* ]]
}

@test "memcached: wrong magic, text protocol and key beyond body EBADMSG; NOOP delivered" {
	check_parser memcached
	[[ "$output" == *"zero_length: delivered 24 bytes"* ]]
	[[ "$output" == *"bad_text_protocol: SO_ERROR EBADMSG"* ]]
}

@test "mqtt: PINGREQ delivered, a 5-byte remaining length EBADMSG" {
	check_parser mqtt
	[[ "$output" == *"zero_length: delivered 2 bytes"* ]]
	[[ "$output" == *"bad_varint_5_bytes: SO_ERROR EBADMSG"* ]]
}

@test "grpc: empty message delivered, compressed flag above 1 EBADMSG" {
	# an example parser (tests/parsers/): no real client makes a bare gRPC stream
	check_parser grpc "$BUILD/tests/parsers/grpc.bpf.o"
	[[ "$output" == *"zero_length: delivered 5 bytes"* ]]
	[[ "$output" == *"bad_compressed_flag: SO_ERROR EBADMSG"* ]]
}

@test "pipelined: a parser reading at skb offset 0 corrupts messages; the SDK's delivers all" {
	local n=40
	# Without UDP FIONREAD the parser splits its KCM socket's stream again in user space
	# (--split prog), from each message's real start, which hides wrong cuts with one
	# KCM socket: the negative control needs one message per redirect.
	if has_feature udp-members; then
		pipelined "$BUILD/tests/parsers/naive_thrift.bpf.o" $n
		[ "$SENT" -eq $n ]
		# observed: the first message intact, then every cut made with its length
		[ "$INTACT" -lt $n ]
		[ "$CORRUPT" -gt 0 ]
	fi
	pipelined "$BUILD/parsers/thrift.bpf.o" $n
	[ "$SENT" -eq $n ]
	[ "$DELIVERED" -eq $n ]
	[ "$INTACT" -eq $n ]
	[ "$CORRUPT" -eq 0 ]
}

@test "trickle: a message written one byte per segment arrives whole (SDK thrift)" {
	run "$PROGS/parser_check" --prog "$BUILD/parsers/thrift.bpf.o" trickle
	echo "$output"
	[[ "$output" == *"ok 1 trickle # 64 bytes in "*" segments"* ]]
	[[ "$output" != *"not ok"* ]]
	[ "$status" -eq 0 ]
}
