#!/usr/bin/env bats
# docs/examples/kcm-pod.yaml under `podman kube play`, unchanged: the sidecar image
# (make image, FROM scratch) serves the mux, and the application container (uid 65534,
# no capabilities) receives 1000 messages through it. Then the pod goes down and takes
# the mux with it.

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
	# the image from this build (FROM scratch: nothing is pulled)
	make -C "$TOP" -s image >/dev/null
}

setup() {
	require_root
	command -v podman >/dev/null || skip "needs podman (scripts/install-deps.sh)"
	TMP=$(mktemp -d)
	podman_conf "$TMP"
	MUX=kcm-demo
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

@test "kcm-pod.yaml runs unchanged; the unprivileged app gets every message through the sidecar" {
	# from a folder without a file named like the image (kube play would build from it)
	cd "$TMP"
	run podman --runtime runc kube play "$TOP/docs/examples/kcm-pod.yaml"
	echo "$output"
	[ "$status" -eq 0 ]
	run timeout 60 podman wait kcm-demo-app
	echo "exit: $output"
	podman logs kcm-demo-app >"$TMP/app.log" 2>&1
	podman logs kcm-demo-kcm-sidecar >"$TMP/sidecar.log" 2>&1
	cat "$TMP/app.log" "$TMP/sidecar.log"
	[ "$output" = 0 ]
	line=$(grep '^{' "$TMP/app.log")
	[ "$(echo "$line" | jq .uid)" = 65534 ]
	[ "$(echo "$line" | jq '.received | add')" = 1000 ]
	[ "$(echo "$line" | jq .bad)" = 0 ]
	# both KCM sockets got messages
	[ "$(echo "$line" | jq '.received | min > 0')" = true ]
	grep -qE "^attach client pid [0-9]+ uid 65534: transport" "$TMP/sidecar.log"
	# the mux is on the node while the pod lives, owned by the sidecar
	"$LOADER" status kcm-demo
	# stopping the pod (SIGTERM, as the kubelet does) makes the sidecar destroy the mux
	run podman pod stop -t 10 kcm-demo
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -d /sys/fs/bpf/kcm/kcm-demo ]
	run podman --runtime runc kube down "$TOP/docs/examples/kcm-pod.yaml"
	[ "$status" -eq 0 ]
}

@test "the suite leaves no pods, containers or pins behind" {
	[ -z "$(podman pod ls -q --filter name=kcm-demo 2>/dev/null)" ]
	[ ! -d /sys/fs/bpf/kcm/kcm-demo ]
}
