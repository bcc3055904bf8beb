#!/usr/bin/env bats
# kcm-loader --prog and --frame: user parser objects built with the SDK, attached from
# the command line to connections of an unmodified application.

load helpers

setup() {
	require_root
	MUX=kcmt-pl-$$-$BATS_TEST_NUMBER
	TMP=$(mktemp -d)
}

teardown() {
	common_teardown
	rm -rf "$TMP"
}

# The example and the build command of docs/parser-sdk.md, with the tree's headers.
build_sdk_parser() {
	cat > "$TMP/myproto.bpf.c" <<'SRC'
#include <kcm_parser.h>

KCM_PARSER(myproto)
{
	return kcm_load_be32(ctx, 0) + 4;
}
SRC
	clang -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu -I"$TOP/bpf" \
		-c "$TMP/myproto.bpf.c" -o "$TMP/myproto.bpf.o"
}

# start_holder N: an application holding N accepted connections; sets HOLDER lines.
start_consumer_and_holder() {
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:7200" --conns "$1" \
		--ready-file "$TMP/holder"
	bg_run in_server "$PROGS/mux_consumer" --open "$MUX" --workers 2 --expect "$2" \
		--timeout $((30 * SCALE)) --ready-file "$TMP/consumer" > "$TMP/consumer.json"
	CONSUMER=$BG_PID
	wait_for_file "$TMP/consumer"
	wait_listen 7200
}

@test "attach --prog: an SDK parser built as documented carries pipelined and trickled streams" {
	require_one_per_redirect
	netns_setup
	build_sdk_parser
	run "$LOADER" create "$MUX" --prog "$TMP/myproto.bpf.o" --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -r .framing)" = parsers ]
	start_consumer_and_holder 2 1200
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7200" --count 1000 \
		--size 0:3000 --mode pipeline --conn-base 0 --hold 30
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7200" --count 200 \
		--size 0:300 --mode trickle --conn-base 1 --hold 30
	wait_for_file "$TMP/holder"
	for i in 1 2; do
		while [ "$(wc -l < "$TMP/holder")" -lt "$i" ]; do sleep 0.05; done
		read -r pid fd < <(sed -n "${i}p" "$TMP/holder")
		run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" --prog "$TMP/myproto.bpf.o" --json
		[ "$status" -eq 0 ]
		# the same object is the same parser: the mux's own, id 0
		[ "$(echo "$output" | jq .parser)" = 0 ]
	done
	wait "$CONSUMER"
	[ "$(jq .received "$TMP/consumer.json")" = 1200 ]
	[ "$(jq .corrupt "$TMP/consumer.json")" = 0 ]
	[ "$(jq '[.workers[] | select(. > 0)] | length' "$TMP/consumer.json")" = 2 ]
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq '.[0].counters.rx_msgs')" = 1200 ]
	[ "$(echo "$output" | jq -r '.[0].parsers[0].name')" = myproto ]
	[ "$(echo "$output" | jq -r '.[0].state')" = ok ]
}

@test "two transports with different parsers in one mux feed one group" {
	require_one_per_redirect
	netns_setup
	# without a splitter: a mux that splits batches with one parser refuses others
	"$LOADER" create "$MUX" --prog "$BUILD/parsers/thrift.bpf.o"
	start_consumer_and_holder 2 900
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7200" --count 500 \
		--size 12:2000 --mode pipeline --conn-base 0 --hold 30
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7200" --count 400 \
		--size 12:2000 --mode each --conn-base 1 --hold 30
	wait_for_file "$TMP/holder"
	while [ "$(wc -l < "$TMP/holder")" -lt 2 ]; do sleep 0.05; done
	read -r pid1 fd1 < <(sed -n 1p "$TMP/holder")
	read -r pid2 fd2 < <(sed -n 2p "$TMP/holder")
	run "$LOADER" attach "$MUX" --pid "$pid1" --fd "$fd1" --frame thrift --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq .parser)" = 0 ]
	run "$LOADER" attach "$MUX" --pid "$pid2" --fd "$fd2" \
		--prog "$BUILD/tests/parsers/thrift_checked.bpf.o" --json
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq .parser)" = 1 ]
	wait "$CONSUMER" || { cat "$TMP/consumer.json"; "$LOADER" status "$MUX"; false; }
	[ "$(jq .received "$TMP/consumer.json")" = 900 ]
	[ "$(jq .corrupt "$TMP/consumer.json")" = 0 ]
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].state')" = ok ]
	# each parser on its own transport map, the kernel reporting both attached
	[ "$(echo "$output" | jq -r '[.[0].parsers[].name] | join(",")')" = thrift,thrift_checked ]
	[ "$(echo "$output" | jq '[.[0].programs[] | select(.map == "transports_1" and .ok)] | length')" = 2 ]
	[ "$(echo "$output" | jq -c '[.[0].transports[].parser] | sort')" = "[0,1]" ]
	[ "$(echo "$output" | jq '.[0].counters.rx_msgs')" = 900 ]
	[ -e "/sys/fs/bpf/kcm/$MUX/transports_1" ]
}

# held_connection PORT: tcp_holder accepts on 127.0.0.1:PORT a connection this shell
# opens as fd 5; its "pid fd" line is in $TMP/holder.
held_connection() {
	bg_run "$PROGS/tcp_holder" --listen "127.0.0.1:$1" --ready-file "$TMP/holder"
	for _ in $(seq 100); do
		exec 5<>"/dev/tcp/127.0.0.1/$1" && break
		sleep 0.05
	done 2>/dev/null
	wait_for_file "$TMP/holder"
}

@test "--split prog: the mux's parser splits, transports cannot bring parsers of their own" {
	"$LOADER" create "$MUX" --prog "$BUILD/parsers/thrift.bpf.o" --split prog
	[ -e "/sys/fs/bpf/kcm/$MUX/split_prog" ]
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq -r '.[0].splitter')" = prog ]
	held_connection 7202
	read -r pid fd < "$TMP/holder"
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" \
		--prog "$BUILD/tests/parsers/thrift_checked.bpf.o"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"split messages by running its own parser program"* ]]
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd"
	[ "$status" -eq 0 ]
	exec 5>&-
	"$LOADER" destroy "$MUX"
	[ ! -e "/sys/fs/bpf/kcm/$MUX" ]
	run "$LOADER" create "$MUX" --prog "$BUILD/parsers/thrift.bpf.o" --split nosuch
	[ "$status" -eq 1 ]
	[[ "$output" == *"no shipped parser is called 'nosuch'"*"'prog'"* ]]
}

@test "--prog errors: a fixed-framing mux, missing objects, unknown frames, broken objects" {
	"$LOADER" create "$MUX"
	held_connection 7201
	read -r pid fd < "$TMP/holder"
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" --frame dns
	[ "$status" -eq 1 ]
	[[ "$output" == *"finds messages with a length prefix, not parser programs"* ]]
	exec 5>&-
	run "$LOADER" create "$MUX-b" --frame nosuch
	[ "$status" -eq 1 ]
	[[ "$output" == *"no parser named 'nosuch'"* ]]
	run "$LOADER" create "$MUX-b" --prog "$TMP/missing.bpf.o"
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot read parser object $TMP/missing.bpf.o: No such file"* ]]
	run "$LOADER" create "$MUX-b" --prog "$BUILD/tests/parsers/bad_no_parser.bpf.o"
	[ "$status" -eq 1 ]
	[[ "$output" == *"has no stream parser"* ]]
	run "$LOADER" create "$MUX-b" --prog "$BUILD/tests/parsers/bad_kcm_style.bpf.o"
	[ "$status" -eq 1 ]
	[[ "$output" == *"is an AF_KCM parser"*"kcm_load_be32(ctx, 0)"* ]]
	run "$LOADER" create "$MUX-b" --prog "$BUILD/tests/parsers/bad_modifies.bpf.o"
	[ "$status" -eq 1 ]
	[[ "$output" == *"which modifies the packet"* ]]
	run "$LOADER" create "$MUX-b" --prog "$BUILD/tests/parsers/bad_verifier.bpf.o"
	[ "$status" -eq 1 ]
	[[ "$output" == *"the verifier rejected parser"*"invalid access to packet"* ]]
	[[ "$output" != *"hint: run as root"* ]]
	run "$LOADER" create "$MUX-b" --prog "$BUILD/parsers/thrift.bpf.o" --batch 4
	[ "$status" -eq 2 ]
	[[ "$output" == *"no splitter"* ]]
	run "$LOADER" create "$MUX-b" --prog "$BUILD/parsers/thrift.bpf.o" --split nosuch
	[ "$status" -eq 1 ]
	[[ "$output" == *"no shipped parser is called 'nosuch'"* ]]
	[ ! -e "/sys/fs/bpf/kcm/$MUX-b" ]
}

@test "--frame batches with the parser's user-space build; such a mux refuses other parsers" {
	netns_setup
	"$LOADER" create "$MUX" --frame thrift
	run "$LOADER" status "$MUX" --json
	[ "$(echo "$output" | jq '.[0].batch')" = 1024 ]
	bg_run in_server "$PROGS/tcp_holder" --listen "$IP_S:7201" --ready-file "$TMP/holder"
	wait_listen 7201
	bg_run in_client "$PROGS/kcm_client" --connect "$IP_S:7201" --count 1 --hold 30
	wait_for_file "$TMP/holder"
	read -r pid fd < "$TMP/holder"
	run "$LOADER" attach "$MUX" --pid "$pid" --fd "$fd" \
		--prog "$BUILD/tests/parsers/thrift_checked.bpf.o"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"splits messages with the 'thrift' parser"* ]]
}

@test "parsers lists every shipped parser with its object" {
	run "$LOADER" parsers --json
	[ "$status" -eq 0 ]
	for p in thrift dns http2 kafka memcached mqtt; do
		obj=$(echo "$output" | jq -r ".[] | select(.name == \"$p\") | .object")
		[ -r "$obj" ]
	done
	run "$LOADER" parsers
	[[ "$output" == *"thrift"*"u32be size + 4"* ]]
}
