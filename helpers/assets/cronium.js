// Cronium's runtime helpers for Node.js scripts, preloaded through
// NODE_OPTIONS=--require: `cronium` is a global, its calls are synchronous
// as Cronium's docs show them, and the script's line numbers stay its own.
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

function call(op, key, value) {
  try {
    return execFileSync('/bin/sh', [path.join(process.env.CRONIUM_HELPERS_DIR || '', 'call.sh'), op, key || ''],
      { input: value || '', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 16 << 20 }).toString('utf8');
  } catch (e) {
    if (e.status === 3) return null;
    const msg = (e.stderr ? e.stderr.toString('utf8').trim() : e.message).replace(/^cronium: /, '');
    const err = new Error(`cronium.${op}: ${msg || 'failed'}`);
    err.name = 'CroniumError';
    throw err;
  }
}

function refuse(name) {
  return () => {
    const err = new Error(`cronium.${name}: tool actions are not available to scripts run by the orchestrator`);
    err.name = 'CroniumError';
    throw err;
  };
}

const cronium = {
  input() {
    let text = process.env.CRONIUM_INPUT_DATA || '';
    if (process.env.CRONIUM_INPUT_FILE) {
      try { text = fs.readFileSync(process.env.CRONIUM_INPUT_FILE, 'utf8'); } catch (e) { /* the variable has it */ }
    }
    return text.trim() ? JSON.parse(text) : {};
  },
  output(value) {
    let text;
    try { text = JSON.stringify(value); } catch (e) { text = undefined; }
    if (text === undefined) {
      const err = new TypeError('cronium.output: the value is not JSON-serialisable');
      throw err;
    }
    call('output', '', text);
  },
  getVariable(key) { return call('getVariable', String(key)); },
  setVariable(key, value) { call('setVariable', String(key), String(value)); },
  setCondition(condition) { call('setCondition', '', condition ? 'true' : 'false'); },
  getCondition() { return call('getCondition') === 'true'; },
  event() { return JSON.parse(call('event') || '{}'); },
};
cronium.get_variable = cronium.getVariable;
cronium.set_variable = cronium.setVariable;
cronium.set_condition = cronium.setCondition;
cronium.get_condition = cronium.getCondition;
for (const name of ['sendEmail', 'send_email', 'executeToolAction', 'execute_tool_action',
  'sendSlackMessage', 'send_slack_message', 'sendDiscordMessage', 'send_discord_message']) {
  cronium[name] = refuse(name);
}
globalThis.cronium = Object.freeze(cronium);
