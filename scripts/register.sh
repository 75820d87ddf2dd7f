#!/usr/bin/env bash
# Register a TuneForge miner or validator hotkey on subnet 234 with the btcli that ships with
# bittensor 11. Every command is printed before it runs; the first failure stops the script.
# Spending TAO is always previewed with --dry-run first and then asked for (unless --yes).
#
#   scripts/register.sh --wallet tf --hotkey miner1 [--network test] [--netuid 234]
#                       [--wallet-path ~/.bittensor/wallets] [--ip 1.2.3.4 --port 8091]
#                       [--dry-run] [--yes]
set -euo pipefail

network="test"
netuid="234"
wallet="default"
hotkey="default"
wallet_path="${HOME}/.bittensor/wallets"
ip=""
port=""
dry_run=0
assume_yes=0

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

# The value after an option; a missing one (end of line, or another --option) is a usage error,
# not bash's "unbound variable".
value() {
  if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
    echo "$1 needs a value" >&2; usage >&2; exit 2
  fi
  printf '%s' "$2"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --network) network="$(value "$@")"; shift 2 ;;
    --netuid) netuid="$(value "$@")"; shift 2 ;;
    --wallet) wallet="$(value "$@")"; shift 2 ;;
    --hotkey) hotkey="$(value "$@")"; shift 2 ;;
    --wallet-path) wallet_path="$(value "$@")"; shift 2 ;;
    --ip) ip="$(value "$@")"; shift 2 ;;
    --port) port="$(value "$@")"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --yes|-y) assume_yes=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

command -v btcli >/dev/null 2>&1 || {
  echo "btcli not found: activate the venv where 'pip install -e .' installed bittensor 11" >&2
  exit 1
}
case "$netuid" in ''|*[!0-9]*) echo "--netuid must be a number" >&2; exit 2 ;; esac

wallet_args=(-w "$wallet" -H "$hotkey" --wallet-path "$wallet_path")

run() {
  echo "+ $*"
  "$@"
}

# Mutations in dry-run mode are only shown, never executed.
mutate() {
  if [ "$dry_run" -eq 1 ]; then
    echo "+ $* (dry run: not run)"
  else
    run "$@"
  fi
}

echo "== 1. keys"
if [ ! -f "$wallet_path/$wallet/coldkeypub.txt" ]; then
  mutate btcli wallet create "${wallet_args[@]}"
  echo "   Write the mnemonics down offline; they are the only way to recover the keys."
elif [ ! -f "$wallet_path/$wallet/hotkeys/$hotkey" ]; then
  mutate btcli wallet new-hotkey "${wallet_args[@]}"
else
  echo "   wallet $wallet / hotkey $hotkey already exist"
fi

echo "== 2. balance and registration cost"
run btcli wallet balance -n "$network" "${wallet_args[@]}"
run btcli subnets burn-cost "$netuid" -n "$network"

echo "== 3. register (preview first)"
run btcli subnets register --netuid "$netuid" -n "$network" "${wallet_args[@]}" --dry-run
if [ "$dry_run" -eq 1 ]; then
  echo "+ btcli subnets register --netuid $netuid -n $network ${wallet_args[*]} --yes (dry run: not run)"
else
  if [ "$assume_yes" -ne 1 ]; then
    read -r -p "Spend the registration cost shown above on netuid $netuid ($network)? [y/N] " answer
    case "$answer" in y|Y|yes|YES) ;; *) echo "not registering"; exit 1 ;; esac
  fi
  run btcli subnets register --netuid "$netuid" -n "$network" "${wallet_args[@]}" --yes
fi

echo "== 4. check the uid"
run btcli wallet registrations -n "$network" "${wallet_args[@]}" --netuid "$netuid"

if [ -n "$ip" ] && [ -n "$port" ]; then
  echo "== 5. publish the miner endpoint (the miner also does this itself at start)"
  mutate btcli tx serve-axon --netuid "$netuid" --ip "$ip" --port "$port" -n "$network" \
    "${wallet_args[@]}" --yes
fi
echo "done: start the node with pm2 (see README.md)"
