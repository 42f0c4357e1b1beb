# Cronium's runtime helpers for Python scripts: `cronium` is a builtin, so
# scripts need no import, and their line numbers stay their own. Loaded by
# Python at start-up from PYTHONPATH.
import builtins as _builtins
import json as _json
import os as _os
import subprocess as _subprocess


class CroniumError(RuntimeError):
    """A runtime helper call that was refused or failed."""


class _Cronium:
    Error = CroniumError

    def _call(self, op, key="", value=""):
        p = _subprocess.run(
            ["/bin/sh", _os.path.join(_os.environ.get("CRONIUM_HELPERS_DIR", ""), "call.sh"), op, key],
            input=value.encode("utf-8"), stdout=_subprocess.PIPE, stderr=_subprocess.PIPE)
        if p.returncode == 3:
            return None
        if p.returncode != 0:
            msg = p.stderr.decode("utf-8", "replace").strip().removeprefix("cronium: ")
            raise CroniumError("cronium.%s: %s" % (op, msg or "failed"))
        return p.stdout.decode("utf-8")

    def input(self):
        text = _os.environ.get("CRONIUM_INPUT_DATA", "")
        path = _os.environ.get("CRONIUM_INPUT_FILE", "")
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                pass
        return _json.loads(text) if text.strip() else {}

    def output(self, value):
        try:
            text = _json.dumps(value)
        except (TypeError, ValueError) as e:
            raise CroniumError("cronium.output: the value is not JSON-serialisable: %s" % e) from None
        self._call("output", value=text)

    def getVariable(self, key):
        return self._call("getVariable", str(key))

    def setVariable(self, key, value):
        self._call("setVariable", str(key), str(value))

    def setCondition(self, condition):
        self._call("setCondition", value="true" if condition else "false")

    def getCondition(self):
        return self._call("getCondition") == "true"

    def event(self):
        return _json.loads(self._call("event") or "{}")

    get_variable = getVariable
    set_variable = setVariable
    set_condition = setCondition
    get_condition = getCondition

    def _tool(self, name):
        def refuse(*args, **kwargs):
            raise CroniumError("cronium.%s: tool actions are not available to scripts run by the orchestrator" % name)
        return refuse

    def __getattr__(self, name):
        if name in ("sendEmail", "send_email", "executeToolAction", "execute_tool_action",
                    "sendSlackMessage", "send_slack_message", "sendDiscordMessage", "send_discord_message"):
            return self._tool(name)
        raise AttributeError("cronium has no helper %r" % name)


_builtins.cronium = _Cronium()
