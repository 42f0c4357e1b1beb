#!/usr/bin/env bash
# Installs what the tests use besides Go and Docker, from Debian packages:
# promtool (prometheus), chromium (status page test), debootstrap and the
# static busybox/bash (runtime images). Missing tools make tests skip on a
# developer machine and fail in CI (CI=1).
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v debootstrap >/dev/null || need+=(debootstrap)
[ -x /bin/bash-static ] || need+=(bash-static)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "install-test-deps: missing ${need[*]} (install them, or run as root on Debian)" >&2
	exit 0
fi
echo "install-test-deps: installing ${need[*]}" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
