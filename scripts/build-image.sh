#!/usr/bin/env bash
# Build the sidecar image (Containerfile) with podman, offline: FROM scratch, runc, and a
# containers.conf without default ulimits (this sandbox refuses setrlimit NOFILE).
#   scripts/build-image.sh [TAG]     default localhost/kcm-bpf:latest
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-localhost/kcm-bpf:latest}
command -v podman >/dev/null || { echo "build-image: needs podman (scripts/install-deps.sh)" >&2; exit 1; }
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
printf '[containers]\ndefault_ulimits = []\n' >"$conf"
export CONTAINERS_CONF=$conf
cd "$top"
podman --runtime runc build --pull=never -f Containerfile -t "$tag" .
echo "built $tag: $(podman image inspect "$tag" --format '{{.Size}}') bytes"
