// pm2 process file for TuneForge: `pm2 start ecosystem.config.js --only tuneforge-miner`.
// Paths are relative to this file; the interpreter is the repo's venv. Settings and secrets come
// from git-ignored env files (copy miner.env.example -> miner.env, etc.), never from this file;
// the network and netuid too (TUNEFORGE_NETWORK / TUNEFORGE_NETUID, default test / 234).
// After editing an env file: `pm2 restart tuneforge-miner --update-env` (a plain restart keeps
// the old environment) — or `pm2 delete tuneforge-miner && pm2 start ecosystem.config.js ...`.
const fs = require("fs");
const path = require("path");

const root = __dirname;
const python = path.join(root, ".venv", "bin", "python");

// Reads KEY=VALUE lines; a missing file is fine (the defaults and flags below still apply).
function envFile(name) {
  const file = path.join(root, name);
  if (!fs.existsSync(file)) return {};
  const env = {};
  for (const line of fs.readFileSync(file, "utf8").split(/\r?\n/)) {
    const match = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/);
    if (match && !line.trim().startsWith("#")) env[match[1]] = match[2].replace(/^["']|["']$/g, "");
  }
  return env;
}

const common = {
  cwd: root,
  interpreter: python,
  autorestart: true,
  restart_delay: 5000,
  exp_backoff_restart_delay: 1000,
  max_restarts: 50,
  // Exit code 2 is a configuration error (bad flag, placeholder IP, missing wallet, unreachable
  // database): restarting cannot fix it, so pm2 stops and `pm2 ls` shows "stopped".
  stop_exit_codes: [2],
  min_uptime: "60s",
  kill_timeout: 30000, // let a round or a generation finish on SIGTERM
  merge_logs: true,
  // No `time: true`: every line already carries loguru's timestamp.
};

module.exports = {
  apps: [
    {
      ...common,
      name: "tuneforge-miner",
      script: "neurons/miner.py",
      args: ["--axon.port", "8091"],
      out_file: path.join(root, "logs", "miner.out.log"),
      error_file: path.join(root, "logs", "miner.err.log"),
      env: { PYTHONUNBUFFERED: "1", ...envFile("miner.env") },
    },
    {
      ...common,
      name: "tuneforge-validator",
      script: "neurons/validator.py",
      args: [],
      out_file: path.join(root, "logs", "validator.out.log"),
      error_file: path.join(root, "logs", "validator.err.log"),
      env: { PYTHONUNBUFFERED: "1", ...envFile("validator.env") },
    },
    {
      ...common,
      name: "tuneforge-api",
      script: path.join(root, ".venv", "bin", "tuneforge"),
      args: ["api", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"],
      out_file: path.join(root, "logs", "api.out.log"),
      error_file: path.join(root, "logs", "api.err.log"),
      env: { PYTHONUNBUFFERED: "1", ...envFile("api.env") },
    },
  ],
};
