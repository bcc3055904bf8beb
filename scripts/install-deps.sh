#!/usr/bin/env bash
# Install the Debian packages kcm-bpf needs to build, test and demo.
# Does nothing (and needs no network) when everything is already present.
set -euo pipefail

pkgs=(clang llvm make gcc libc6-dev pkg-config libbpf-dev bpftool libxdp-dev
      libelf-dev zlib1g-dev bats iproute2 jq procps util-linux kmod groff-base
      # real clients and libraries of the protocols the shipped parsers handle
      python3 python3-thrift thrift-compiler nghttp2-client knot-dnsutils
      libmemcached-tools kcat mosquitto-clients
      # benchmark plots
      gnuplot-nox
      # the kernel matrix (scripts/guest.sh): Debian's kernels booted in qemu
      qemu-system-x86 busybox-static xz-utils debian-archive-keyring
      # the sidecar image and its pod (make image, tests/bats/pod.bats)
      # (catatonit: podman's pause process; a Recommends that --no-install-recommends skips)
      podman runc catatonit)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
