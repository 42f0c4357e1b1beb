#!/usr/bin/env bash
# Installs the Go release that go.mod names into DIR, for a machine with no
# Go of its own: Debian's Go bootstraps, and the go command fetches the
# release (the golang.org/toolchain module) through whatever module proxy
# the machine is configured with (GOPROXY), as its own toolchain switching
# does. Debian's Go predates that switching, so the module is fetched here
# and unpacked by hand.
#
#   scripts/install-go.sh DIR
set -euo pipefail
dir=${1:?usage: install-go.sh DIR}
cd "$(dirname "$0")/.."
want=$(awk '/^go /{print $2; exit}' go.mod)
arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
mod="golang.org/toolchain@v0.0.1-go${want}.linux-${arch}"

fail() { echo "install-go: $*" >&2; exit 1; }

if ! command -v /usr/lib/go/bin/go >/dev/null; then
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
		fail "no Go on this machine: install Go ${want} (or run as root on Debian)"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
fi
echo "install-go: fetching Go ${want} as ${mod} through the configured module proxy" >&2
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
src=$(cd "$tmp" && GOPATH="$tmp/gopath" GOFLAGS=-modcacherw GO111MODULE=on \
	/usr/lib/go/bin/go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') ||
	fail "could not fetch ${mod}: check GOPROXY (go env GOPROXY) and the network"
[ -n "$src" ] && [ -f "$src/bin/go" ] || fail "${mod} has no bin/go"
rm -rf "$dir" && mkdir -p "$(dirname "$dir")"
cp -a "$src" "$dir"
# The module cache keeps no execute bits.
chmod -R u+w "$dir"
chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
"$dir/bin/go" version >&2
