#!/usr/bin/env bash
# Builds the orchestrator's own image without a registry: a static binary
# from this machine's Go, on an empty base (deploy/image/Dockerfile) with
# CA certificates and a non-root user. With a registry, the root Dockerfile
# builds the same image from source in a Go image.
#
#   scripts/build-image.sh                 cronium/orchestrator:VERSION, also tagged :latest
#   IMAGE=name:tag scripts/build-image.sh  that tag only
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
# The source label names where this checkout came from, as git knows it.
SOURCE=${SOURCE:-$(git remote get-url origin 2>/dev/null || true)}
LATEST=
if [ -z "${IMAGE:-}" ]; then
	IMAGE=cronium/orchestrator:$VERSION
	LATEST=cronium/orchestrator:latest
fi
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { printf 'build-image: %s\n' "$*" >&2; }

if [ ! -r "$CA" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null
fi
if [ ! -r "$CA" ]; then
	log "no CA bundle at $CA: install ca-certificates or set CA_BUNDLE"
	exit 1
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$ctx/state"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
	-o "$root/usr/local/bin/cronium-orchestrator" ./cmd/cronium-orchestrator
cp "$CA" "$root/etc/ssl/certs/ca-certificates.crt"
echo 'cronium:x:65532:65532::/nonexistent:/sbin/nologin' >"$root/etc/passwd"
echo 'cronium:x:65532:' >"$root/etc/group"
cp deploy/image/Dockerfile "$ctx/Dockerfile"
docker build -q --build-arg VERSION="$VERSION" --build-arg COMMIT="$COMMIT" --build-arg SOURCE="$SOURCE" -t "$IMAGE" "$ctx" >/dev/null
if [ -n "$LATEST" ]; then
	docker tag "$IMAGE" "$LATEST"
fi
log "built $IMAGE${LATEST:+ (and $LATEST)}"
