# Cronium's runtime helpers for Bash scripts, loaded through BASH_ENV: no
# `source` needed in the script, and its line numbers stay its own.
cronium__call() { /bin/sh "$CRONIUM_HELPERS_DIR/call.sh" "$@"; }
cronium_input() {
	if [ -n "${CRONIUM_INPUT_FILE:-}" ] && [ -s "$CRONIUM_INPUT_FILE" ]; then
		cat "$CRONIUM_INPUT_FILE"
	else
		printf '%s' "${CRONIUM_INPUT_DATA:-{\}}"
	fi
	echo
}
# A JSON argument is kept as JSON, anything else as a string.
cronium_output() { printf '%s' "$1" | cronium__call output-text; }
cronium_getVariable() {
	cronium__call getVariable "$1" </dev/null
	case $? in 0) echo ;; 3) ;; *) return 1 ;; esac
}
cronium_setVariable() { printf '%s' "$2" | cronium__call setVariable "$1"; }
cronium_setCondition() { printf '%s' "$1" | cronium__call setCondition; }
cronium_getCondition() { cronium__call getCondition </dev/null && echo; }
cronium_event() { cronium__call event </dev/null && echo; }
cronium__tool() {
	echo "cronium: $1: tool actions are not available to scripts run by the orchestrator" >&2
	return 1
}
cronium_get_variable() { cronium_getVariable "$@"; }
cronium_set_variable() { cronium_setVariable "$@"; }
cronium_set_condition() { cronium_setCondition "$@"; }
cronium_get_condition() { cronium_getCondition "$@"; }
cronium_sendEmail() { cronium__tool sendEmail; }
cronium_send_email() { cronium__tool send_email; }
cronium_executeToolAction() { cronium__tool executeToolAction; }
cronium_execute_tool_action() { cronium__tool execute_tool_action; }
cronium_sendSlackMessage() { cronium__tool sendSlackMessage; }
cronium_sendDiscordMessage() { cronium__tool sendDiscordMessage; }
# The job's own BASH_ENV, if it had one, still applies.
if [ -n "${CRONIUM_BASH_ENV:-}" ]; then . "$CRONIUM_BASH_ENV"; fi
