# Cronium remote library: POSIX sh, run by /bin/sh on the server. The client
# prepends variable assignments and appends the entry point, "${1:-step}":
# the setup step's program is saved as lib.sh in the spool, where the
# detached wrapper, job and watchdog run it with their own name as $1.
#
# Spool layout ($d = $base/cronium-<job>.<execution>.XXXXXX, mode 0700, made
# by mktemp -d; $tag is <job>.<execution>, or <job>.* to abandon a job):
#   lib.sh env script.*  written by setup; env is emptied once sourced
#   h/                   the runtime helpers' files (helpers package), if any
#   owner                "<orchestrator> <execution>", both hex, written first
#                        by setup when the client has an orchestrator id; the
#                        execution is the one the job knows (reconcile.go)
#   launched             claimed by whoever may launch: exactly one winner
#                        (see claim; a directory, from earlier versions,
#                        counts as claimed too); claimed right before the
#                        launch, so its mtime is when the job started (see
#                        launched_at; earlier versions wrote launch_at)
#   umask                the login umask, which the job restores
#   wpid pgid            the wrapper's pid and the job's process group
#   out err              the job's stdout and stderr
#   fpid                 the pid of the last follow to attach, woken by the
#                        wrapper when status appears (see doze)
#   stop.lock stopped    first stop reason wins (claim); "exit" when none
#   cost times           what the job used (see cost), written before status
#   status               the job's exit status, written last, atomically
#
# A fork costs milliseconds on a small server and every job pays for each
# one in its steps: files are read with the read builtin, not cat, written
# with printf, claimed with noclobber rather than mkdir, and helpers set
# variables rather than print into a command substitution.
#
# Beside the spools, $base/.cronium-<job>.<execution>.fence/ (hidden, so that
# no spool pattern matches it) holds one entry
# per follow of that execution (see fence): a setup that began before a
# later follow looked for its spool never launches.

# d is the spool when this runs as lib.sh; the client's steps set it.
d=${0%/lib.sh}

# nap sleeps without holding the session's pipes open. Fractional sleep is
# GNU and busybox, not POSIX: fall back to whole seconds.
nap() { sleep "$1" </dev/null >/dev/null 2>&1 || sleep 1 </dev/null >/dev/null 2>&1; }

# fail reports a failed step. A spool that setup made but did not launch is
# removed: it holds the job's environment, secrets included. (d is set only
# by the steps that own a spool.)
fail() {
	printf 'F %s\n' "$*"
	[ -n "$d" ] && [ -d "$d" ] && [ ! -e "$d/launched" ] && rm -rf -- "$d"
	exit 3
}

# spools lists the spool directories matching $tag that we own, skipping
# symlinks and anything another user planted in a shared /tmp. $base and
# $tag hold no blanks or glob characters but tag's own "*": unquoted, the
# pattern globs.
spools() {
	for c in $base/cronium-$tag.??????; do
		[ -d "$c" ] && [ ! -L "$c" ] && [ -O "$c" ] && printf '%s\n' "$c"
	done
}

# claim creates the file $1 unless it exists, as one step: POSIX makes
# noclobber's check and creation atomic, so of all who claim the same name
# exactly one wins, and no process is started. An existing directory of
# that name (earlier versions claimed with mkdir) is taken too.
claim() {
	set -C
	{ true >"$1"; } 2>/dev/null
	cr=$?
	set +C
	return $cr
}

# attach sets d to the launched spool of this execution. A spool whose setup
# died before launching is claimed (so that setup can never launch it) and
# removed.
attach() {
	d=
	for c in $(spools); do
		if claim "$c/launched"; then
			rm -rf -- "$c"
			continue
		fi
		d=$c
	done
	[ -n "$d" ]
}

# fence_dir sets f to this execution's fence, when $tag names one
# execution.
fence_dir() { f=$base/.cronium-$tag.fence; }

# fences sets nf to the number of follows that fenced this execution so
# far. (Variables, not output: a command substitution forks.)
fences() {
	fence_dir
	set -- "$f"/*
	[ -e "$1" ] && nf=$# || nf=0
}

# fence records a follow before it looks for the spool. A setup whose
# session outlived its client (a frozen server, a client killed mid-upload)
# may still be about to create a spool and launch it: it sees the new entry
# and gives up, or it made its spool before the entry, and then attach
# finds it (launched: followed, not launched: claimed). So one launch at
# most, whatever the order.
fence() {
	fence_dir
	mkdir "$f" 2>/dev/null
	[ -d "$f" ] && [ ! -L "$f" ] && [ -O "$f" ] || return 0
	fences
	k=$((nf + 1))
	until mkdir "$f/$k" 2>/dev/null; do k=$((k + 1)); done
}

pgid() {
	pg=
	read -r pg 2>/dev/null <"$d/pgid"
	case $pg in '' | *[!0-9]*) return 1 ;; esac
}

# kill_group sends TERM to the job's process group, gives it $grace_ticks
# tenths of a second, then KILL.
kill_group() {
	pgid || return 0
	kill -s TERM -- "-$pg" 2>/dev/null || return 0
	n=0
	while [ $n -lt "$grace_ticks" ] && kill -s 0 -- "-$pg" 2>/dev/null; do
		nap 0.1
		n=$((n + 1))
	done
	kill -s KILL -- "-$pg" 2>/dev/null
	return 0
}

# stop_job records why the job was stopped (the first reason wins) and kills
# its group. Once status exists the group is gone and its id may have been
# reused: never signal it then. A stop right after launch waits for pgid.
stop_job() {
	n=0
	until pgid || [ -f "$d/status" ] || [ $n -ge 50 ]; do nap 0.1; n=$((n + 1)); done
	[ -f "$d/status" ] && return 0
	if claim "$d/stop.lock"; then
		printf '%s\n' "$1" >"$d/stopped"
	fi
	kill_group
}

wait_status() {
	n=0
	while [ ! -f "$d/status" ] && [ $n -lt $((grace_ticks + 50)) ]; do nap 0.1; n=$((n + 1)); done
}

# setup makes the spool and launches the wrapper detached in its own
# session. The program itself ($p, the variables and this library) becomes
# lib.sh. Stdin carries the unpack program, $nunpack bytes: printf lines
# that write the environment file, the runtime helpers' files and the
# script (no process starts per file), then a line naming $upload_end, so
# that a connection that dropped during the upload never launches half a
# script (head -c cannot tell).
setup() {
	d=
	fences
	g0=$nf
	[ -d "$base" ] || fail "spool directory $base does not exist on the server"
	# One read, the only one before S: BusyBox's head takes all the pipe
	# holds, not just its count. In a variable, the program's secrets (the
	# environment) reach no file but env. (The substitution drops the last
	# newline.)
	unpack=$(head -c "$nunpack") || fail "upload failed"
	case $unpack in
	*"
: $upload_end") ;;
	*) fail "upload truncated" ;;
	esac
	d=$(mktemp -d "$base/cronium-$tag.XXXXXX") || fail "cannot create a spool directory in $base"
	# mktemp -d makes the spool 0700 whatever the umask. The login umask is
	# kept for the job in a file, which costs no process, where $(umask)
	# forks; the file is written under it (it holds nothing secret, in a
	# spool no one else can enter), everything else under 077. A login
	# umask that masks the owner's own bits (the spool not writable, or the
	# file not readable) takes the slow way.
	um=
	{ umask >"$d/umask"; } 2>/dev/null && read -r um 2>/dev/null <"$d/umask"
	if [ -z "$um" ]; then
		um=$(umask)
		umask 077
		chmod 700 "$d" && rm -f "$d/umask" && printf '%s\n' "$um" >"$d/umask" || fail "cannot write to $d"
	fi
	umask 077
	{ [ -z "$owner" ] || printf '%s %s\n' "$owner" "$owner_exec" >"$d/owner"; } || fail "cannot write to $d"
	printf '%s\n' "$p" >"$d/lib.sh"
	[ "$helpers" != 1 ] || mkdir "$d/h" "$d/h/c" || fail "cannot write to $d"
	# A subshell: whatever the program does wrong cannot end setup before
	# fail removes the spool (it holds the job's environment).
	(eval "$unpack") || fail "upload could not be unpacked"
	unpack=
	[ "$helpers" != 1 ] || [ -s "$d/h/token" ] || fail "helpers upload failed"
	: >"$d/out"
	: >"$d/err"
	fences
	[ "$nf" = "$g0" ] || fail "setup superseded by a resumed run"
	claim "$d/launched" || fail "spool was claimed by a resumed run"
	setsid /bin/sh "$d/lib.sh" wrap </dev/null >/dev/null 2>&1 &
	printf 'S %s\n' "$d"
}

# wrap runs in its own session,
# outside the job's process group, so that it survives stopping the job and
# records how it ended. The job opens out and err itself: the shell's own
# "Killed" notices must not land in the job's stderr.
wrap() {
	printf '%s\n' "$$" >"$d/wpid"
	wd=
	if [ "$timeout" != 0 ]; then
		setsid /bin/sh "$d/lib.sh" watchdog </dev/null >/dev/null 2>&1 &
		wd=$!
	fi
	setsid /bin/sh "$d/lib.sh" job </dev/null >/dev/null 2>&1
	st=$?
	[ -n "$wd" ] && kill -s TERM -- "-$wd" 2>/dev/null
	claim "$d/stop.lock"
	kill_group
	printf '%s\n' "$st" >"$d/status.tmp" && cost && mv -f "$d/status.tmp" "$d/status" && wake
}

# cost writes what the job's processes used to $d/cost, for the end frame
# (see follow): getrusage of the children this shell reaped (the job, with
# what it waited for), CPU seconds and the largest peak resident set of one
# process. perl (in every Debian, 4 ms to start) or else python3 (25 ms)
# takes this shell's place, so that the children it reaped are its own;
# its command line still names lib.sh (see wrapper_gone), and it publishes
# status.tmp and wakes the follow itself (if it dies first, lost_wrapper
# publishes). Without either,
# the shell's times: CPU only.
cost() {
	command -v perl >/dev/null 2>&1 && exec perl -e "$cost_pl" "$d/lib.sh" "$d"
	command -v python3 >/dev/null 2>&1 && exec python3 -I -S -c "$cost_py" "$d/lib.sh" "$d"
	times >"$d/times" 2>/dev/null &&
		{ read -r _ _ && read -r u s && printf 'utime=%s stime=%s\n' "$u" "$s" >"$d/cost"; } <"$d/times"
	return 0
}

# Core perl has no getrusage: the system call, by its number on the
# architectures perl was built for (else CPU only, from times).
cost_pl='use Config;
my ($d, %nr) = ($ARGV[1], "x86_64" => 98, "aarch64" => 165, "riscv64" => 165,
	"i386" => 77, "i486" => 77, "i586" => 77, "i686" => 77, "arm" => 77);
my ($arch) = $Config{archname} =~ /^(x86_64|aarch64|riscv64|i[3-6]86|arm)/;
my ($b, @r) = ("\0" x 256);
my $c = sprintf("cpu=%.3f", (times)[2] + (times)[3]);
if ($arch && syscall($nr{$arch}, -1, $b) == 0 && (@r = unpack("l!5", $b))) {
	$c = sprintf("cpu=%.3f rss=%d", $r[0] + $r[2] + ($r[1] + $r[3]) / 1e6, $r[4] * 1024);
}
if (open(my $f, ">", "$d/cost")) { print $f "$c\n"; close $f; }
rename("$d/status.tmp", "$d/status");
if (open(my $p, "<", "$d/fpid")) { my $f = <$p>; kill("WINCH", $1) if defined $f && $f =~ /^(\d+)$/; }'

cost_py='import os, resource as r, signal, sys
d = sys.argv[2]
try:
	u = r.getrusage(r.RUSAGE_CHILDREN)
	with open(d + "/cost", "w") as f:
		f.write("cpu=%.3f rss=%d\n" % (u.ru_utime + u.ru_stime, u.ru_maxrss * 1024))
finally:
	os.rename(d + "/status.tmp", d + "/status")
	try:
		with open(d + "/fpid") as f:
			os.kill(int(f.read()), signal.SIGWINCH)
	except Exception:
		pass'

# watchdog enforces the timeout on the server, so it holds while the
# orchestrator is disconnected. A sleep without fractions gets whole
# seconds, rounded up: never an early stop.
watchdog() {
	sleep "$timeout" 2>/dev/null || sleep "$timeout_s"
	stop_job timeout
}

# job is the session leader of the job's process group. Everything it needs
# after sourcing the job's environment is kept in positional parameters,
# which the environment file cannot change.
job() {
	# One write of a few bytes: a reader sees the whole id or an empty
	# file, which pgid takes for none yet.
	printf '%s\n' "$$" >"$d/pgid"
	exec >>"$d/out" 2>>"$d/err"
	um=
	read -r um 2>/dev/null <"$d/umask"
	case $um in '' | *[!0-7]*) ;; *) umask "$um" ;; esac # else setup's 077
	set -- "$d/$script" "${workdir:-${HOME:-/}}" "$lang" "$d/env"
	. "$4"
	: >"$4" # the job's secrets stay in its environment only
	# The runtime helpers, in each language (see the helpers package): set
	# here, where the spool's path is known, after the job's own values.
	if [ -d "$d/h" ]; then
		export CRONIUM_HELPERS_DIR="$d/h" CRONIUM_BASH_ENV="${BASH_ENV:-}" BASH_ENV="$d/h/cronium.sh"
		export PYTHONPATH="$d/h${PYTHONPATH:+:$PYTHONPATH}"
		export NODE_OPTIONS="--require $d/h/cronium.js${NODE_OPTIONS:+ $NODE_OPTIONS}"
	fi
	cd -- "$2" 2>/dev/null || {
		printf 'cronium: cannot change to working directory %s\n' "$2" >&2
		exit 1
	}
	case $3 in
	python) for i in python3 python; do command -v $i >/dev/null 2>&1 && exec $i "$1"; done ;;
	node) for i in node nodejs; do command -v $i >/dev/null 2>&1 && exec $i "$1"; done ;;
	*) command -v bash >/dev/null 2>&1 && exec bash "$1" ;;
	esac
	printf 'cronium: no %s interpreter found on this server\n' "$3" >&2
	exit 127
}

# launched_at sets la to when the job started (epoch s), or to nothing
# when that is unknown: launch_at where an earlier version wrote it, else
# the mtime of launched (date -r of GNU, BusyBox and toybox; like setsid
# and /proc, Linux). Only a resumed run asks, so that no job pays a
# process for it.
launched_at() {
	la=
	read -r la 2>/dev/null <"$d/launch_at"
	case $la in '' | *[!0-9]*) la=$(date -r "$d/launched" +%s 2>/dev/null) ;; esac
	case $la in '' | *[!0-9]*) la= ;; esac
}

# elapsed prints the seconds since the job started (setup launched it).
elapsed() {
	launched_at
	case $la in
	'') printf 0 ;;
	*) printf '%s' $(($(date +%s) - la)) ;;
	esac
}

# wrapper_gone tells whether the wrapper has died; not while it has yet to
# write its pid, unless it never started. /proc tells the wrapper from a
# process that reused its pid.
wrapper_gone() {
	w=
	read -r w 2>/dev/null <"$d/wpid"
	case $w in '' | *[!0-9]*)
		never_started
		return
		;;
	esac
	if [ -d /proc/$$ ]; then
		! grep -qF "$d/lib.sh" "/proc/$w/cmdline" 2>/dev/null
	else
		! kill -s 0 "$w" 2>/dev/null
	fi
}

# never_started tells a wrapper that never ran from one yet to write its
# pid: setup killed (its session cut) between claiming the launch and
# starting the wrapper leaves a launched spool nothing will finish. A minute
# after the launch, a wrapper with no pid was never started.
never_started() {
	launched_at
	[ -n "$la" ] && [ $(($(date +%s) - la)) -gt 60 ]
}

# lost_wrapper notices a wrapper that died without recording a status (the
# server rebooted with a persistent spool, the OOM killer, kill -9): it
# stops what is left of the job and records 255, "lost", so that nobody
# waits forever.
lost_wrapper() {
	wrapper_gone || return 0
	[ -f "$d/status" ] && return 0
	[ -f "$d/status.tmp" ] && mv -f "$d/status.tmp" "$d/status" && return 0 # died in cost
	stop_job lost
	[ -f "$d/status" ] || printf '255\n' >"$d/status"
}

# control reads commands from the client. EOF means the client is gone:
# stop following (the job itself keeps running).
control() {
	while read -r cmd arg <&3; do
		case $cmd in
		stop) stop_job "$arg" ;;
		done)
			# A relay still shutting down may add a file as rm walks the
			# spool (rm then fails on a directory not empty): try again.
			n=0
			fence_dir
			until rm -rf -- "$d" "$f" 2>/dev/null || [ $n -ge 20 ]; do
				nap 0.1
				n=$((n + 1))
			done
			exit 0
			;;
		esac
	done
	kill -s TERM $$ 2>/dev/null
}

# follow finds the launched spool of a job started earlier (a resumed run)
# and streams it (see stream), or prints N when there is none.
follow() {
	umask 077
	fence
	attach || {
		printf 'N\n'
		exit 0
	}
	stream "$(elapsed)"
}

# stream ($1: seconds since the job started) streams the spool $d from byte
# offsets $o and $e as frames:
#   A dir elapsed | O n + n bytes | E n + n bytes | H | X status how
# then waits for "done" to remove the spool. X ends with the cost, when the
# wrapper measured one: cpu=<s> rss=<bytes>, or utime=<times> stime=<times>.
stream() {
	cd -- "$d" || fail "cannot enter $d"
	printf 'A %s %s\n' "$d" "$1"
	woke=0
	trap 'woke=1' WINCH
	printf '%s\n' "$$" >fpid
	exec 3<&0
	control &
	rd=$!
	i=0
	hb=0
	while :; do
		fin=0
		[ -f status ] && fin=1
		# Nothing written yet needs no wc (a process): most polls of a
		# short or quiet job.
		if [ "$o" = 0 ] && [ "$e" = 0 ] && [ ! -s out ] && [ ! -s err ]; then
			set -- 0 out 0 err
		else
			set -- $(wc -c out err)
		fi
		[ "$1" -ge "$o" ] && [ "$3" -ge "$e" ] || fail "offsets $o/$e are beyond the spool ($1/$3)"
		moved=0
		if [ "$1" -gt "$o" ]; then
			printf 'O %s\n' $(($1 - o))
			span out "$o" "$1"
			o=$1
			moved=1
		fi
		if [ "$3" -gt "$e" ]; then
			printf 'E %s\n' $(($3 - e))
			span err "$e" "$3"
			e=$3
			moved=1
		fi
		[ $fin = 1 ] && break
		# The job's end wakes us (see doze): polls are for its output,
		# every 50 ms while it flows, backing off to 0.5s and a heartbeat
		# while the job is silent. Each costs forks that a small server's
		# job would feel.
		[ $moved = 1 ] && i=0 || i=$((i + 1))
		case $i in
		0 | 1 | 2 | 3) t=0.05 ;;
		4 | 5) t=0.1 ;;
		6 | 7) t=0.2 ;;
		*)
			t=0.5
			printf 'H\n'
			hb=$((hb + 1))
			[ $((hb % 4)) = 0 ] && lost_wrapper
			;;
		esac
		doze $t
	done
	st=
	read -r st <status
	how=exit
	[ -f stopped ] && read -r how <stopped
	c=
	[ -f cost ] && read -r c <cost
	printf 'X %s %s %s\n' "$st" "${how:-exit}" "$c"
	wait $rd
}

# span prints the bytes of file $1 from offset $2 to $3: from the start,
# one process instead of two.
span() {
	if [ "$2" = 0 ]; then
		head -c "$3" "$1"
	else
		tail -c +$(($2 + 1)) "$1" | head -c $(($3 - $2))
	fi
}

# doze naps in the background, so that the wrapper's WINCH (see wake) ends
# the wait as soon as the job's status appears: a short job's end is seen
# at once, not at the next poll (the trap runs once a foreground command
# ends, or ends the wait builtin). WINCH, because its default action is to
# ignore it, should fpid name a process that reused the pid of a follow
# gone long ago.
doze() {
	sleep "$1" </dev/null >/dev/null 2>&1 &
	# A WINCH during the loop's own commands set woke: no wait then. A
	# sleep without fractions fails at once (status 1): nap instead.
	if [ "$woke" != 1 ]; then
		wait $!
		[ $? = 1 ] && [ "$woke" != 1 ] && nap "$1"
	fi
	[ "$woke" = 1 ] && kill $! 2>/dev/null
	woke=0
	return 0
}

# wake tells the follow that attached last that status is there.
wake() {
	fp=
	read -r fp 2>/dev/null <"$d/fpid"
	case $fp in '' | *[!0-9]*) return 0 ;; esac
	kill -s WINCH "$fp" 2>/dev/null
	return 0
}

# run is setup and follow in one session, the way every job starts: it
# launches the job and streams it at once, with no second session, fence or
# search for the spool (no other follow can be waiting for a spool that did
# not exist yet). Stdin carries setup's upload, then control's commands: the
# client sends none before it has read S.
run() {
	setup
	o=0 e=0
	stream 0
}

# relay carries the job's runtime helper calls: R, then the helpers'
# relay on stdin and stdout until the job ends (or N: nothing to relay, or
# the job has ended).
# It is stopped when the job's status appears, so that no relay outlives
# its job on the server.
relay() {
	attach && [ -f "$d/h/relay.sh" ] && [ ! -f "$d/status" ] || {
		printf 'N\n'
		exit 0
	}
	printf 'R\n'
	exec 3<&0
	/bin/sh "$d/h/relay.sh" "$d/h" <&3 &
	rp=$!
	# The client ends the session with TERM: the relay must go with it, or
	# it would hold the session's stdout open.
	trap 'kill "$rp" 2>/dev/null; exit 0' TERM HUP
	while kill -s 0 "$rp" 2>/dev/null && [ -d "$d" ] && [ ! -f "$d/status" ]; do nap 0.5; done
	kill "$rp" 2>/dev/null
	exit 0
}

# abandon stops every run matching $tag and removes its spools.
abandon() {
	for d in $(spools); do
		if ! claim "$d/launched"; then
			stop_job abandoned
			wait_status
		fi
		rm -rf -- "$d"
	done
	for f in $base/.cronium-$tag.fence; do
		[ -d "$f" ] && [ ! -L "$f" ] && [ -O "$f" ] && rm -rf -- "$f"
	done
	printf 'D\n'
}

# ours tells whether $d is a launched spool of this orchestrator ($owner)
# and sets x to the execution its owner file names. A spool without
# launched may be a setup in progress.
ours() {
	[ -n "$owner" ] && [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] && [ -e "$d/launched" ] &&
		[ -f "$d/owner" ] && read -r o x <"$d/owner" && [ "$o" = "$owner" ]
}

# dangling lists this orchestrator's spools whose job has ended, or whose
# wrapper died without saying how it ended, as "C <name> <execution>"
# frames, then D. It changes nothing: the client decides which are owned.
dangling() {
	for d in $(spools); do
		ours || continue
		[ -f "$d/status" ] || wrapper_gone || continue
		printf 'C %s %s\n' "${d##*/}" "$x"
	done
	printf 'D\n'
}

# sweep removes the spools named on stdin (names dangling printed), one per
# line, each after checking again that it is ours and ended; a lost
# wrapper's job is stopped first, as follow would. It prints "R <name>"
# for each removed, then D. (Not n: stop_job counts with it.)
sweep() {
	while IFS= read -r sp; do
		case $sp in cronium-*) ;; *) continue ;; esac
		case $sp in *[!A-Za-z0-9._-]*) continue ;; esac
		d=$base/$sp
		ours || continue
		[ -f "$d/status" ] || lost_wrapper
		[ -f "$d/status" ] || continue
		rm -rf -- "$d" "$base/.${sp%.*}.fence" && printf 'R %s\n' "$sp"
	done
	printf 'D\n'
}
