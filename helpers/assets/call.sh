# call.sh OP [KEY]: one runtime helper call; the value, if any, on stdin.
# Prints the answer; exits 0 (ok), 3 (no value) or 1 (refused or failed:
# the reason on stderr). Calls are independent: several may run at once.
# Every process counts (a call is a few of them): builtins where they do.
dir=${CRONIUM_HELPERS_DIR:?}
token=
# The token file has no newline: read returns non-zero, with the token.
{ read -r token <"$dir/token"; } 2>/dev/null
if [ -z "$token" ]; then
	echo "cronium: runtime helpers are not available in this job" >&2
	exit 1
fi
# Made by whichever comes first, a call or the relay.
[ -p "$dir/req" ] || { mkdir -p "$dir/c" && { mkfifo "$dir/req" 2>/dev/null || [ -p "$dir/req" ]; }; } || exit 1
call=$dir/c/$$
# A file left by a dead process whose pid this one reuses goes first.
mkfifo "$call.out" 2>/dev/null || { rm -f "$call.in" "$call.ready" "$call.out" && mkfifo "$call.out"; } || exit 1
# Opened before the call is announced, read-write so that the open does not
# wait for the relay: the answer cannot be written before anyone reads.
exec 5<>"$call.out"
case $1 in
getVariable | getCondition | event) printf '%s\n%s\n%s\n' "$token" "$1" "$2" >"$call.in" ;;
*) { printf '%s\n%s\n%s\n' "$token" "$1" "$2" && cat; } >"$call.in" ;;
esac || exit 1
# ready: the request is whole (a relay that starts now may serve it).
: >"$call.ready"
printf '%s\n' "$call" >"$dir/req"
IFS=' ' read -r status answer <&5
case $status in
ok)
	[ -z "$answer" ] || printf '%s' "$answer" | base64 -d
	exit 0
	;;
none) exit 3 ;;
*)
	msg=$(printf '%s' "$answer" | base64 -d)
	echo "cronium: ${msg:-the orchestrator did not answer}" >&2
	exit 1
	;;
esac
