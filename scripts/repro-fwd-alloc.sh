#!/bin/bash
# repro-fwd-alloc.sh: reproduce the kernel's sk_forward_alloc race on UDP KCM sockets
# (docs/kernels.md, "sk_forward_alloc"). Runs flow.bats' case that moves 200,000 messages
# through 4 UDP KCM sockets with active readers and closes one mid-stream, while bpftrace
# prints every socket freed with sk_forward_alloc not zero (the kernel warns once per
# boot; this shows each one). Needs root, bpftrace and a built tree.
#
#   scripts/repro-fwd-alloc.sh                     # on this kernel
#   scripts/guest.sh run 6.12 -- scripts/repro-fwd-alloc.sh             # 2 vCPUs
#   scripts/guest.sh run 6.12 --cpus 1 -- scripts/repro-fwd-alloc.sh    # 1 vCPU
set -u
case "${1:-}" in
-h | --help)
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
cd "$(dirname "$0")/.." || exit 2
command -v bpftrace >/dev/null || {
	echo "repro-fwd-alloc: bpftrace is not installed (apt-get install bpftrace)" >&2
	exit 2
}
[ -f build/parsers/thrift.bpf.o ] || {
	echo "repro-fwd-alloc: build/parsers/thrift.bpf.o missing: run make first" >&2
	exit 2
}
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bpftrace -e '
kretfunc:inet_sock_destruct /args->sk->sk_forward_alloc != 0/ {
	printf("freed with sk_forward_alloc %d: protocol %d, sk_rmem_alloc %d, rcvbuf %d\n",
	       args->sk->sk_forward_alloc, args->sk->sk_protocol,
	       args->sk->sk_backlog.rmem_alloc.counter, args->sk->sk_rcvbuf);
}' >"$out" 2>&1 &
bt=$!
for _ in $(seq 120); do
	grep -q Attaching "$out" && break
	kill -0 $bt 2>/dev/null || break
	sleep 0.5
done
if ! grep -q Attaching "$out"; then
	cat "$out" >&2
	kill $bt 2>/dev/null
	exit 2
fi
echo "kernel $(uname -r), $(nproc) CPUs"
bats -f 'one message per redirect: kcm_close mid-stream' tests/bats/flow.bats |
	grep -E '^(ok|not ok)'
sleep 2 # sockets are freed after an RCU grace period
kill -INT $bt
wait $bt
n=$(grep -c '^freed with' "$out")
grep '^freed with' "$out"
echo "$n socket(s) freed with sk_forward_alloc not zero"
