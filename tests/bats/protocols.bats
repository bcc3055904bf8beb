#!/usr/bin/env bats
# Real clients of real protocols against handlers behind KCM sockets. The server
# (tests/protocols/kcm_proto_server.py, in NS_S) gives each client connection a mux made
# with build/parsers/<proto>.bpf.o and 4 worker threads; the client (in NS_C) is a Debian
# package's tool or library, never our own encoder. Each test checks that the client got
# every answer right, and from the server's JSON summary that every request arrived as one
# whole message (parsed to its last byte), at exactly one worker (no request id twice),
# with more than one worker busy.
# shellcheck shell=bash disable=SC2030,SC2031

load helpers

PY=/usr/bin/python3 # Debian's, where python3-thrift lives (not a pyenv shim first on PATH)
PROTO_DIR=$TOP/tests/protocols
PORT=7300
WORKERS=4

setup() {
	require_root
	netns_setup
	SUMMARY=$BATS_TEST_TMPDIR/summary.json
	READY=$BATS_TEST_TMPDIR/ready
	ERR=$BATS_TEST_TMPDIR/server.err
}

teardown() {
	common_teardown
}

# need CMD...: skip unless every command is installed (scripts/install-deps.sh).
need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c not installed"
	done
}

# start_server PROTO ARGS...: the protocol server in NS_S, ready when this returns.
start_server() {
	local proto=$1 parser=$BUILD/parsers/$1.bpf.o
	shift
	[ -e "$parser" ] || skip "parser not built: $parser"
	[ -x "$PY" ] || skip "$PY not installed"
	bg_run nsenter --net=/run/netns/"$NS_S" "$PY" "$PROTO_DIR/kcm_proto_server.py" \
		--proto "$proto" --parser "$parser" --lib "$BUILD/libkcm.so" \
		--listen "$IP_S:$PORT" --workers "$WORKERS" --summary "$SUMMARY" \
		--ready-file "$READY" --timeout $((120 * SCALE)) "$@" 2>"$ERR"
	SERVER_PID=$BG_PID
	wait_for_file "$READY" 20 || { cat "$ERR"; return 1; }
}

# stop_server: SIGTERM (the server drains what was redirected, then writes its summary),
# then check its exit status.
stop_server() {
	local rc=0
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || rc=$?
	echo "server exit $rc"
	cat "$ERR"
	[ -s "$SUMMARY" ] && jq -c 'del(.conns)' "$SUMMARY"
	[ "$rc" -eq 0 ]
}

# j FILTER: a value from the server's summary.
j() { jq -r "$1" "$SUMMARY"; }

# expect_eq WHAT WANT GOT
expect_eq() {
	[ "$2" = "$3" ] || { echo "$1: expected $2, got $3"; return 1; }
}

# assert_whole MESSAGES IDS: every message parsed whole, none lost to a transport error,
# each request id seen once, and more than one worker of a connection busy.
assert_whole() {
	expect_eq messages "$1" "$(j .messages)"
	expect_eq "whole messages" "$1" "$(j .whole)"
	expect_eq "corrupt messages" 0 "$(j .corrupt)"
	expect_eq "truncated messages" 0 "$(j .truncated)"
	expect_eq "handler errors" 0 "$(j .handler_errors)"
	expect_eq "transports failed by the parser" 0 "$(j .parse_errors)"
	expect_eq "sum of worker messages" "$1" "$(j '[.workers[].messages] | add')"
	expect_eq "distinct request ids" "$2" "$(j .ids)"
	expect_eq "request ids seen twice" 0 "$(j .duplicate_ids)"
	[ "$(j .max_workers_used)" -ge 2 ] ||
		{ echo "one worker got every message: $(j -c '[.conns[].workers]')"; return 1; }
}

@test "thrift: python3-thrift framed clients get every call answered by the workers" {
	need thrift
	"$PY" -c 'import thrift' 2>/dev/null || skip "python3-thrift not installed"
	local gen=$BATS_TEST_TMPDIR/gen
	mkdir "$gen"
	thrift --gen py -out "$gen" "$PROTO_DIR/thrift/calc.thrift"
	start_server thrift --thrift-gen "$gen"
	# 2 connections x (400 synchronous calls, echo bodies up to 100 KB, + 200 oneway calls)
	run in_client "$PY" "$PROTO_DIR/thrift/calc_client.py" --connect "$IP_S:$PORT" \
		--gen "$gen" --conns 2 --calls 400 --notes 200 --timeout $((10 * SCALE))
	echo "$output"
	[ "$status" -eq 0 ]
	expect_eq "calls answered right" 800 "$(echo "$output" | jq .ok)"
	expect_eq "oneway calls sent" 400 "$(echo "$output" | jq .notes)"
	stop_server
	assert_whole 1200 1200
	expect_eq connections 2 "$(j .connections)"
	expect_eq "oneway calls received" 400 "$(j .kinds.note)"
	expect_eq replies 800 "$(j .replies)"
}

@test "the checks fail when the parser is wrong: DNS framed as Thrift" {
	need kdig
	[ -e "$BUILD/parsers/thrift.bpf.o" ] || skip "parser not built: thrift"
	start_server dns --parser "$BUILD/parsers/thrift.bpf.o" # the last --parser wins
	run in_client kdig @"$IP_S" -p "$PORT" +tcp +keepopen +short +timeout=$((4 * SCALE)) +retry=0 \
		q1.kcm.test q2.kcm.test
	echo "$output"
	[ "$output" != "$(printf '10.0.0.1\n10.0.0.2')" ]
	stop_server
	run assert_whole 2 2
	echo "$output"
	[ "$status" -ne 0 ]
}

@test "dns: kdig sends 300 queries on one TCP connection and gets each name's address" {
	need kdig
	local i names=() want=()
	for ((i = 1; i <= 300; i++)); do
		names+=("q$i.kcm.test")
		want+=("10.0.$((i >> 8)).$((i & 255))")
	done
	start_server dns
	run in_client kdig @"$IP_S" -p "$PORT" +tcp +keepopen +short +timeout=$((5 * SCALE)) "${names[@]}"
	echo "$output" | head -n 5
	[ "$status" -eq 0 ]
	expect_eq answers "$(printf '%s\n' "${want[@]}")" "$output"
	stop_server
	assert_whole 300 300
	expect_eq connections 1 "$(j .connections)"
	expect_eq replies 300 "$(j .replies)"
}

@test "http2: h2load makes 2000 GET requests, 32 at a time, on one connection" {
	need h2load
	start_server http2
	run in_client h2load -n 2000 -c 1 -m 32 "http://$IP_S:$PORT/"
	echo "$output" | grep -E '^(requests|status codes):'
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^requests: 2000 total, 2000 started, 2000 done, 2000 succeeded'
	echo "$output" | grep -q '^status codes: 2000 2xx'
	stop_server
	# preface, SETTINGS, SETTINGS ACK, 2000 HEADERS, GOAWAY and maybe a WINDOW_UPDATE
	expect_eq "HEADERS frames" 2000 "$(j .kinds.headers)"
	expect_eq prefaces 1 "$(j .kinds.preface)"
	expect_eq "responses" 2000 "$(j .app.responses)"
	assert_whole "$(j '[.kinds[]] | add')" 2001
}

@test "http2: h2load uploads 100 KB bodies over two connections; DATA frames spread over workers" {
	need h2load
	local body=$BATS_TEST_TMPDIR/body
	head -c 100000 /dev/urandom >"$body"
	start_server http2
	run in_client h2load -n 200 -c 2 -m 8 -d "$body" "http://$IP_S:$PORT/upload"
	echo "$output" | grep -E '^(requests|status codes):'
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^requests: 200 total, 200 started, 200 done, 200 succeeded'
	stop_server
	expect_eq "request body bytes" 20000000 "$(j .app.data_bytes)"
	expect_eq "HEADERS frames" 200 "$(j .kinds.headers)"
	expect_eq responses 200 "$(j .app.responses)"
	assert_whole "$(j '[.kinds[]] | add')" 202
}

@test "http2: nghttp gets every body of 20 concurrent streams" {
	need nghttp
	local i urls=()
	for ((i = 0; i < 20; i++)); do
		urls+=("http://$IP_S:$PORT/$i")
	done
	start_server http2
	run in_client nghttp "${urls[@]}"
	[ "$status" -eq 0 ]
	expect_eq bodies 20 "$(echo "$output" | grep -cE '^kcm-bpf http2 stream [0-9]+$')"
	expect_eq "distinct streams" 20 "$(echo "$output" | sort -u | wc -l)"
	stop_server
	expect_eq "HEADERS frames" 20 "$(j .kinds.headers)"
	assert_whole "$(j '[.kinds[]] | add')" 21
}

@test "memcached: memccp stores 100 files, memccat reads each back byte for byte" {
	need memccp memccat
	local files=$BATS_TEST_TMPDIR/files i keys=() values=$BATS_TEST_TMPDIR/values
	mkdir "$files"
	for ((i = 1; i <= 100; i++)); do
		keys+=("key$i")
		head -c $((i * 397 % 20000 + 1)) /dev/urandom | base64 -w0 >"$files/key$i"
		# memccat ends each value with a newline
		{ cat "$files/key$i"; echo; } >>"$values"
	done
	start_server memcached
	(cd "$files" && in_client memccp --binary --servers="$IP_S:$PORT" "${keys[@]}")
	run in_client memccat --binary --servers="$IP_S:$PORT" "${keys[@]}"
	[ "$status" -eq 0 ]
	expect_eq "values read back" "$(cat "$values")" "$output"
	stop_server
	expect_eq sets 100 "$(j .kinds.set)"
	expect_eq gets 100 "$(j .kinds.getk)"
	expect_eq "items stored" 100 "$(j .app.items)"
	assert_whole "$(j '[.kinds[]] | add')" "$(j '[.kinds[]] | add')"
}

@test "memcached: memcslap mget (quiet GETKQ then NOOP) hits every key before the NOOP answer" {
	need memcslap
	start_server memcached
	run in_client memcslap --binary --servers="$IP_S:$PORT" --test=mget --concurrency=1 \
		--execute-number=500 --initial-load=500
	echo "$output"
	[ "$status" -eq 0 ]
	stop_server
	local getkq
	getkq=$(j .kinds.getkq)
	[ "$getkq" -ge 500 ] || { echo "only $getkq GETKQ"; return 1; }
	expect_eq "GETKQ hits" "$getkq" "$(j .app.hits)"
	expect_eq "NOOPs answered before their GETKQs were" 0 "$(j .app.noop_timeouts)"
	assert_whole "$(j '[.kinds[]] | add')" "$(j '[.kinds[]] | add')"
}

# librdkafka's request timeouts (10 s for its first request) at the guest's speed: the
# server loads a data plane per connection, seconds of emulated verifier time
KCAT_TIMEOUTS=(-X api.version.request.timeout.ms=$((10000 * SCALE)))

# kcat_roundtrip COUNT BATCH LINES_FILE: produce the lines, consume them back in order.
kcat_roundtrip() {
	local n=$1 batch=$2 in=$3 out=$BATS_TEST_TMPDIR/consumed
	run in_client kcat -P -b "$IP_S:$PORT" -t kcmtest -p 0 -X linger.ms=0 "${KCAT_TIMEOUTS[@]}" \
		-X batch.num.messages="$batch" -X message.max.bytes=1000000 <"$in"
	echo "$output"
	[ "$status" -eq 0 ]
	in_client kcat -C -b "$IP_S:$PORT" -t kcmtest -p 0 "${KCAT_TIMEOUTS[@]}" -o beginning -e -q \
		-f '%s\n' >"$out"
	expect_eq "records consumed" "$n" "$(wc -l <"$out")"
	cmp "$in" "$out" || { echo "records came back different or out of order"; return 1; }
}

@test "kafka: kcat produces 2000 records one request each and consumes them back in order" {
	need kcat
	local in=$BATS_TEST_TMPDIR/records
	seq 1 2000 | sed 's/^/record-/' >"$in"
	start_server kafka
	kcat_roundtrip 2000 1 "$in"
	stop_server
	expect_eq "produce requests" 2000 "$(j .kinds.produce)"
	expect_eq "records stored" 2000 "$(j .app.records)"
	expect_eq "requests sequenced past a gap" 0 "$(j .app.order_timeouts)"
	assert_whole "$(j '[.kinds[]] | add')" "$(j '[.kinds[]] | add')"
}

@test "kafka: kcat produces batches of 5 KB records and consumes them back in order" {
	need kcat
	local in=$BATS_TEST_TMPDIR/records i
	for ((i = 1; i <= 600; i++)); do
		printf 'big-%d-%s\n' "$i" "$(head -c 3800 /dev/urandom | base64 -w0)"
	done >"$in"
	start_server kafka
	kcat_roundtrip 600 20 "$in"
	stop_server
	expect_eq "records stored" 600 "$(j .app.records)"
	[ "$(j .kinds.produce)" -ge 30 ] || { echo "only $(j .kinds.produce) produce requests"; return 1; }
	assert_whole "$(j '[.kinds[]] | add')" "$(j '[.kinds[]] | add')"
}

# mosquitto_pub_lines QOS N [ARGS...]: publish N lines, one PUBLISH each, with -d output.
mosquitto_pub_lines() {
	local qos=$1 n=$2
	shift 2
	seq 1 "$n" | sed 's/^/message-/' |
		in_client mosquitto_pub -h "$IP_S" -p "$PORT" -i kcmtest -t kcm/test -q "$qos" -l -d "$@"
}

@test "mqtt: mosquitto_pub publishes 1000 QoS 1 messages and gets every PUBACK" {
	need mosquitto_pub
	start_server mqtt
	run mosquitto_pub_lines 1 1000
	[ "$status" -eq 0 ]
	expect_eq PUBACKs 1000 \
		"$(echo "$output" | sed -n 's/.*received PUBACK (Mid: \([0-9]*\).*/\1/p' | sort -u | wc -l)"
	stop_server
	expect_eq "QoS 1 PUBLISH" 1000 "$(j .kinds.publish_qos1)"
	expect_eq "distinct payloads" 1000 "$(j .app.distinct_payloads)"
	expect_eq "acknowledgements sequenced past a gap" 0 "$(j .app.order_timeouts)"
	# CONNECT, 1000 PUBLISH, DISCONNECT (which carries no id)
	assert_whole "$(j '[.kinds[]] | add')" 1001
}

@test "mqtt: mosquitto_pub over MQTT 5 at QoS 2 completes 500 PUBLISH/PUBREL exchanges" {
	need mosquitto_pub
	start_server mqtt
	run mosquitto_pub_lines 2 500 -V mqttv5
	[ "$status" -eq 0 ]
	expect_eq PUBRECs 500 "$(echo "$output" | grep -c 'received PUBREC')"
	expect_eq PUBCOMPs 500 \
		"$(echo "$output" | sed -n 's/.*received PUBCOMP (Mid: \([0-9]*\).*/\1/p' | sort -u | wc -l)"
	stop_server
	expect_eq "QoS 2 PUBLISH" 500 "$(j .kinds.publish_qos2)"
	expect_eq PUBREL 500 "$(j .kinds.pubrel)"
	expect_eq "acknowledgements sequenced past a gap" 0 "$(j .app.order_timeouts)"
	assert_whole "$(j '[.kinds[]] | add')" 1001
}
