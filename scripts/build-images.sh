#!/usr/bin/env bash
# Builds the runtime images container jobs run in, without a registry.
#
#   scripts/build-images.sh bash     cronium/runtime-bash:1 (scratch + bash-static + busybox)
#   scripts/build-images.sh debian   cronium/runtime-python:1, cronium/runtime-node:1,
#                                    cronium/test-sshd:local and cronium/debian-base:2 (the
#                                    bundle test's stand-in for the backend's image, with
#                                    tini and s6) from one debootstrap root fs
#   scripts/build-images.sh all      both
#
# Images that already exist are kept (FORCE=1 rebuilds). Everything comes
# from Debian packages: this machine reaches Debian's mirror but no image
# registry. With a registry, build images/<lang>/Dockerfile instead (see
# the README).
set -euo pipefail

BASH_IMAGE=${BASH_IMAGE:-cronium/runtime-bash:1}
PYTHON_IMAGE=${PYTHON_IMAGE:-cronium/runtime-python:1}
NODE_IMAGE=${NODE_IMAGE:-cronium/runtime-node:1}
SSHD_IMAGE=${SSHD_IMAGE:-cronium/test-sshd:local}
# Its tag changes with what the root fs must contain, so that a machine
# with older images builds them again.
BASE_IMAGE=cronium/debian-base:2
SUITE=${DEBIAN_SUITE:-}
MIRROR=${DEBIAN_MIRROR:-}
PATH_ENV='ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin'

log() { printf 'build-images: %s\n' "$*" >&2; }
have_image() { [ "${FORCE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

# apt_install installs Debian packages when they are missing, if it can.
apt_install() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		log "need Debian packages ${missing[*]} (run as root on Debian, or build images/*/Dockerfile with a registry)"
		return 1
	fi
	log "installing ${missing[*]}"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

configured_archive() {
	apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
		awk -v s="$1" '$1 == s { print $2; exit }'
}

# debian_source sets SUITE and MIRROR from this machine's own apt sources
# (the suite it runs, the archive that serves it), unless DEBIAN_SUITE and
# DEBIAN_MIRROR say otherwise. No mirror is named here: a machine reaches
# the one it is configured with.
debian_source() {
	if [ -z "$SUITE" ]; then
		SUITE=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	fi
	if [ -z "$MIRROR" ] && [ -n "$SUITE" ] && command -v apt-get >/dev/null; then
		MIRROR=$(configured_archive "$SUITE")
		# apt lists its sources only once it has fetched their indexes.
		if [ -z "$MIRROR" ] && [ "$(id -u)" = 0 ]; then
			apt-get update -qq >/dev/null && MIRROR=$(configured_archive "$SUITE")
		fi
	fi
	if [ -z "$SUITE" ] || [ -z "$MIRROR" ]; then
		log "no Debian archive for suite '${SUITE:-?}' in this machine's apt sources: set DEBIAN_SUITE and DEBIAN_MIRROR, or build images/*/Dockerfile with a registry"
		return 1
	fi
}

build_bash() {
	if have_image "$BASH_IMAGE"; then log "$BASH_IMAGE exists"; return; fi
	if ! apt_install bash-static busybox-static; then
		log "falling back to the registry path: docker build images/bash"
		docker build -t "$BASH_IMAGE" "$(dirname "$0")/../images/bash"
		return
	fi
	local root
	root=$(mktemp -d)
	trap 'rm -rf "$root"' RETURN
	mkdir -p "$root"/{bin,etc,tmp,work}
	chmod 1777 "$root/tmp" "$root/work"
	cp /bin/bash-static "$root/bin/bash"
	cp /bin/busybox "$root/bin/busybox"
	for applet in $(/bin/busybox --list); do
		case $applet in bash | busybox) ;; *) ln -s busybox "$root/bin/$applet" ;; esac
	done
	ln -sf bash "$root/bin/sh"
	mkdir -p "$root/usr"
	ln -s ../bin "$root/usr/bin"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
	tar -C "$root" -c . | docker import --change "$PATH_ENV" --change 'WORKDIR /work' \
		--change 'CMD ["bash"]' - "$BASH_IMAGE" >/dev/null
	log "built $BASH_IMAGE"
}

build_debian() {
	if have_image "$PYTHON_IMAGE" && have_image "$NODE_IMAGE" && have_image "$SSHD_IMAGE" && have_image "$BASE_IMAGE"; then
		log "$PYTHON_IMAGE, $NODE_IMAGE, $SSHD_IMAGE and $BASE_IMAGE exist"
		return
	fi
	apt_install debootstrap
	debian_source || return 1
	local root
	root=$(mktemp -d)
	trap 'rm -rf "$root"' RETURN
	log "debootstrap $SUITE (python3, nodejs, openssh-server, tini, s6; about a minute)"
	debootstrap --variant=minbase \
		--include=python3,nodejs,openssh-server,procps,ca-certificates,tini,s6 \
		"$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; return 1; }
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man
	rm -f "$root"/etc/ssh/ssh_host_* # every test generates its own host key
	mkdir -p "$root/work" "$root/run/sshd" && chmod 1777 "$root/work"
	local id
	id=$(tar -C "$root" -c . | docker import --change "$PATH_ENV" --change 'WORKDIR /work' - "$BASE_IMAGE")
	docker tag "$id" "$PYTHON_IMAGE"
	docker tag "$id" "$NODE_IMAGE"
	docker tag "$id" "$SSHD_IMAGE"
	rm -f "$root.log"
	log "built $PYTHON_IMAGE, $NODE_IMAGE, $SSHD_IMAGE, $BASE_IMAGE"
}

case ${1:-all} in
bash) build_bash ;;
debian) build_debian ;;
all) build_bash; build_debian ;;
*) echo "usage: $0 bash|debian|all" >&2; exit 2 ;;
esac
