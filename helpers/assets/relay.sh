# relay.sh DIR: carries the job's runtime helper calls to the orchestrator.
# Started by the orchestrator (docker exec, or an SSH session) with its
# stdin and stdout as the channel; POSIX sh, no tool beyond base64 and rm.
#
# A call is three files under DIR/c named by the caller's pid: its request
# (.in), a mark that the request is whole (.ready) and a FIFO for its
# answer (.out); call.sh writes the files' common path as one line to the
# DIR/req FIFO. The relay sends the request to the orchestrator as one
# base64 line and writes the answer line it gets back into the call's FIFO.
# A call stays pending until answered, so a relay started after the last
# one died (the orchestrator restarted) serves what that one left.
dir=$1
# Never mkdir -p: a relay that starts as its job's files are removed must
# not make them again (an SSH spool would be left on the server).
# (An executor may have made c already: a test, not a process.)
[ -p "$dir/req" ] || { { [ -d "$dir/c" ] || mkdir "$dir/c" 2>/dev/null || [ -d "$dir/c" ]; } && { mkfifo "$dir/req" 2>/dev/null || [ -p "$dir/req" ]; }; } || exit 1
# One relay at a time: the newest wins, an older one would take requests
# it can no longer answer.
old=
[ -f "$dir/relay.pid" ] && read -r old <"$dir/relay.pid"
echo $$ >"$dir/relay.pid"
[ -n "$old" ] && [ "$old" != $$ ] && kill "$old" 2>/dev/null

serve() {
	[ -f "$1.ready" ] || return 0
	{ base64 -w0 2>/dev/null || base64 | tr -d '\n'; } <"$1.in"
	echo
	IFS= read -r answer || exit 0
	# Read-write open: it never blocks, even if the caller is gone.
	if [ -p "$1.out" ] && exec 3<>"$1.out"; then
		printf '%s\n' "$answer" >&3
		exec 3>&-
	fi
	rm -f "$1.in" "$1.ready" "$1.out"
}

for ready in "$dir"/c/*.ready; do
	[ -f "$ready" ] && serve "${ready%.ready}"
done
exec 4<>"$dir/req"
while IFS= read -r call <&4; do
	case $call in "$dir"/c/*) serve "$call" ;; esac
done
