#!/usr/bin/env bats
# docs/examples/kcm-pod.yaml under `podman kube play`, unchanged: the sidecar image
# (make image, FROM scratch) serves the mux, and the application container (uid 65534, no
# capabilities) echoes messages a client outside the pod sends over 4 connections, from 4
# worker threads. Then the pod is removed and takes the mux and its programs with it.

load helpers

# podman as scripts/build-image.sh runs it: runc, and no default ulimits (this sandbox
# refuses setrlimit(RLIMIT_NOFILE)); KERNEL-NOTES has why.
podman_conf() {
	printf '[containers]\ndefault_ulimits = []\n' >"$1/containers.conf"
	export CONTAINERS_CONF=$1/containers.conf
}

setup_file() {
	[ "$(id -u)" -eq 0 ] || return 0
	command -v podman >/dev/null || return 0
	# the image from this build (FROM scratch: nothing is pulled); setup() says why not
	if make -C "$TOP" -s image >/dev/null 2>"$BATS_FILE_TMPDIR/image.err"; then
		rm -f "$BATS_FILE_TMPDIR/image.err"
	fi
}

setup() {
	require_root
	command -v podman >/dev/null || skip "needs podman (scripts/install-deps.sh)"
	TMP=$(mktemp -d)
	podman_conf "$TMP"
	MUX=kcm-demo
	# storage podman cannot mount (a guest without fuse, or a root on overlayfs, where
	# podman's overlay driver needs fuse-overlayfs) is the machine's problem, not the
	# image's: say so and skip; any other build failure fails
	if [ -e "$BATS_FILE_TMPDIR/image.err" ]; then
		local why
		why=$(grep -m1 -E "fuse: device not found|cannot mount|creating overlay mount|not supported over overlayfs" \
			"$BATS_FILE_TMPDIR/image.err") || { cat "$BATS_FILE_TMPDIR/image.err"; return 1; }
		skip "podman cannot mount a container's storage here: $why"
	fi
	# a container runtime that cannot start any container is the machine's problem, not
	# the pod's: say so and skip
	if ! out=$(podman --runtime runc run --rm localhost/kcm-bpf:latest --version 2>&1); then
		skip "podman cannot run a container here: $(echo "$out" | tail -1)"
	fi
}

teardown() {
	(cd "$TMP" && podman --runtime runc kube down "$TOP/docs/examples/kcm-pod.yaml") \
		>/dev/null 2>&1 || true
	podman pod rm -f kcm-demo >/dev/null 2>&1 || true
	common_teardown
	rm -rf "$TMP"
}

# count_bpf: sk_skb, sk_msg and sock_ops programs and sockmaps on the host
count_bpf() {
	echo "$(bpftool prog show 2>/dev/null | grep -cE ': (sk_skb|sk_msg|sock_ops) ') $(bpftool map show 2>/dev/null | grep -c ': sockmap ')"
}

@test "kcm-pod.yaml unchanged: an unprivileged app echoes 20000 messages from outside the pod through 4 workers" {
	before=$(count_bpf)
	# from a folder without a file named like the image (kube play would build from it)
	cd "$TMP"
	run podman --runtime runc kube play "$TOP/docs/examples/kcm-pod.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	infra=$(podman pod inspect kcm-demo --format '{{.InfraContainerID}}')
	ip=$(podman inspect "$infra" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
	echo "pod address: $ip"
	[ -n "$ip" ]
	# a client outside the pod (the host): 4 connections, 5000 messages each, every
	# reply read back and checked
	for i in $(seq 150); do
		podman logs kcm-demo-app 2>&1 | grep -q "listening on" && break
		sleep 0.2
	done
	run timeout 120 "$PROGS/kcm_client" --connect "$ip:7000" --conns 4 --count 5000 \
		--size 16:512 --replies --json
	echo "$output"
	[ "$status" -eq 0 ]
	client=$(echo "$output" | grep '^{')
	[ "$(jq -c '[.messages, .replies, .corrupt, .duplicate, .missing, .foreign]' <<<"$client")" = "[20000,20000,0,0,0,0]" ]
	run timeout 60 podman wait kcm-demo-app
	[ "$output" = 0 ]
	podman logs kcm-demo-app >"$TMP/app.log" 2>&1
	podman logs kcm-demo-kcm-sidecar >"$TMP/sidecar.log" 2>&1
	cat "$TMP/app.log" "$TMP/sidecar.log"
	app=$(grep '^{' "$TMP/app.log")
	# the application is unprivileged: not root, no effective capability
	[ "$(jq .uid <<<"$app")" = 65534 ]
	[ "$(jq -r .cap_eff <<<"$app")" = 0000000000000000 ]
	# every message exactly once, whole, at one of 4 workers, each of which got some
	[ "$(jq .total <<<"$app")" = 20000 ]
	[ "$(jq '[.workers[].received] | add' <<<"$app")" = 20000 ]
	[ "$(jq '[.workers[].echoed] | add' <<<"$app")" = 20000 ]
	[ "$(jq '[.workers[].bad] | add' <<<"$app")" = 0 ]
	[ "$(jq '[.workers[] | select(.received > 0)] | length' <<<"$app")" = 4 ]
	# the 4 connections were attached through the sidecar, for uid 65534
	[ "$(grep -cE '^attach client pid [0-9]+ uid 65534: transport' "$TMP/sidecar.log")" = 4 ]
	"$LOADER" status kcm-demo
	# the pod removed (SIGTERM to the sidecar): no pins, programs or sockmaps left
	run podman pod rm -f kcm-demo
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -d /sys/fs/bpf/kcm/kcm-demo ]
	[ "$(count_bpf)" = "$before" ]
}

@test "the suite leaves no pods, containers or pins behind" {
	[ -z "$(podman pod ls -q --filter name=kcm-demo 2>/dev/null)" ]
	[ ! -d /sys/fs/bpf/kcm/kcm-demo ]
}
