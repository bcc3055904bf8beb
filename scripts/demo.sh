#!/usr/bin/env bash
# The demo: real traffic between two network namespaces joined by a veth pair.
# A client opens several TCP connections and sends framed messages; on the server side
# one KCM multiplexor spreads the messages over worker KCM sockets (one per thread), the
# workers reply through their KCM sockets, and the client verifies every reply.
#   scripts/demo.sh [--conns N] [--workers N] [--count M] [--size MIN:MAX] [--batch N]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}

conns=4 workers=4 count=5000 size=16:4096 batch=1
while [ $# -gt 0 ]; do
	case $1 in
	--conns) conns=$2; shift 2 ;;
	--workers) workers=$2; shift 2 ;;
	--count) count=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--batch) batch=$2; shift 2 ;;
	-h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done
for v in "--conns $conns" "--workers $workers" "--count $count" "--batch $batch"; do
	case ${v#* } in
	'' | 0 | *[!0-9]*) echo "demo: invalid ${v% *} '${v#* }': expected a positive number" >&2; exit 2 ;;
	esac
done
# every echoed body carries its connection and sequence number (12 bytes), so that the
# client can tell each reply is the one it sent
if ! [[ $size =~ ^([0-9]+)(:[0-9]+)?$ ]] || [ "${BASH_REMATCH[1]}" -lt 12 ]; then
	echo "demo: invalid --size '$size': expected MIN[:MAX] with MIN at least 12 (each" \
		"body carries its connection and sequence number)" >&2
	exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (BPF programs and network namespaces); try: sudo make demo" >&2
	exit 1
fi
for p in kcm_server kcm_client; do
	[ -x "$build/tests/$p" ] || { echo "demo: $build/tests/$p is missing: run make" >&2; exit 1; }
done

id=$$
ns_c=kcmdemo-$id-client ns_s=kcmdemo-$id-server
tmp=$(mktemp -d)
server_pid= client_pid=
cleanup() {
	set +e # a process killed here makes its wait fail: that must not stop the cleanup
	[ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	ip netns del "$ns_c" 2>/dev/null || true
	ip netns del "$ns_s" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: namespaces $ns_c (10.123.0.1) and $ns_s (10.123.0.2) joined by a veth pair"
ip netns add "$ns_c"
ip netns add "$ns_s"
ip link add kd$id-c netns "$ns_c" type veth peer name kd$id-s netns "$ns_s"
ip -n "$ns_c" addr add 10.123.0.1/24 dev kd$id-c
ip -n "$ns_s" addr add 10.123.0.2/24 dev kd$id-s
for ns in "$ns_c" "$ns_s"; do ip -n "$ns" link set lo up; done
ip -n "$ns_c" link set kd$id-c up
ip -n "$ns_s" link set kd$id-s up

total=$((conns * count))
echo "demo: server: one mux, $workers worker KCM sockets, batch $batch; client: $conns" \
	"connections x $count messages (bodies $size bytes), every message echoed back"
nsenter --net=/run/netns/"$ns_s" "$build/tests/kcm_server" --listen 10.123.0.2:7000 \
	--workers "$workers" --conns "$conns" --expect "$total" --per-conn "$count" --batch "$batch" \
	--reply --ready-file "$tmp/ready" --attached-file "$tmp/attached" --timeout 300 \
	--pin "kcmdemo-$id" > "$tmp/server.out" &
server_pid=$!
# (a minute at most: loading the data plane takes seconds on a slow or emulated CPU)
for _ in $(seq 1 1200); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
[ -e "$tmp/ready" ] || { echo "demo: the server did not start" >&2; cat "$tmp/server.out"; exit 1; }

nsenter --net=/run/netns/"$ns_c" "$build/tests/kcm_client" --connect 10.123.0.2:7000 \
	--conns "$conns" --count "$count" --size "$size" --mode pipeline --replies \
	--start-file "$tmp/attached" --timeout 300 > "$tmp/client.out" &
client_pid=$!
# while traffic flows, show the mux as kcm-loader sees it
for _ in $(seq 1 1200); do [ -e "$tmp/attached" ] && break; sleep 0.05; done
echo "demo: kcm-loader status while the messages flow:"
"$build/kcm-loader" status "kcmdemo-$id" | sed 's/^/    /' || true

client_rc=0
wait "$client_pid" || client_rc=$?
client_pid=
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=
sed 's/^/server: /' "$tmp/server.out"
sed 's/^/client: /' "$tmp/client.out"
if [ "$client_rc" -eq 0 ] && [ "$server_rc" -eq 0 ]; then
	echo "demo: verified: $total messages, each at exactly one worker, every reply intact"
	exit 0
fi
echo "demo: FAILED (server exit $server_rc, client exit $client_rc)"
exit 1
