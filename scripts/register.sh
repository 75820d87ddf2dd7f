#!/usr/bin/env bash
# Register a TuneForge miner or validator hotkey on subnet 234 with the btcli that ships with
# bittensor 11. Every command is printed before it runs; the first failure stops the script.
# Spending TAO is always previewed with --dry-run first and then asked for (unless --yes).
# A failed registration is explained in plain words with the next step (see explain_failure).
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

# What went wrong, in plain words, and what to do next: one line each for every failure btcli 11
# reports for `subnets register` (its `error[CODE]` line and the chain error name in its note).
# Prints the explanation; returns 0 only when the goal is already met (hotkey already registered).
explain_failure() {
  local out="$1"
  local says
  says() { grep -qiE "$1" <<<"$out"; }
  echo "---"
  if says 'HotKeyAlreadyRegisteredInSubNet|error\[ALREADY_EXISTS\]'; then
    echo "already registered: this hotkey already holds a uid on netuid $netuid; nothing was spent."
    return 0
  elif says 'MEV shield is not active|MevShield\.NextKey is unset|NextKey not available'; then
    echo "not registered: btcli 11 only registers MEV-shielded, and the MEV shield on '$network' has"
    echo "no key right now. Nothing was spent. Next: wait a few blocks and rerun this script; if it"
    echo "persists, the network's MevShield pallet is off (ask in the subnet channel)."
  elif says 'must be submitted MEV-shielded|omit --no-mev-shield'; then
    echo "not registered: registration cannot be sent unshielded, but btcli is configured with"
    echo "mev_shield off. Next: btcli config set mev_shield true (or clear it), then rerun."
  elif says 'not included before its era expired|ExtrinsicExpired|DecryptionFailed|ExtrinsicDecodeFailed|FailedShieldedTxParsing|InvalidShieldedTxPubKeyHash|shielded inner extrinsic'; then
    echo "unknown outcome: the MEV-shielded (encrypted) registration was accepted but its inner call"
    echo "was not seen landing (the shield key rotated, or it expired). It may still have registered:"
    echo "the uid check below tells. Next: if no uid is shown, rerun this script (the new attempt"
    echo "is encrypted to the current key); the cost is only paid by a registration that lands."
    return 2
  elif says 'TooManyRegistrationsThisBlock|TooManyRegistrationsThisInterval|RateLimitExceeded|error\[RATE_LIMITED\]'; then
    echo "not registered: netuid $netuid has taken its registrations for this block/interval."
    echo "Nothing was spent. Next: rerun in a few minutes (the interval resets every few hundred blocks)."
  elif says 'SubNetRegistrationDisabled|POWRegistrationDisabled|error\[DISABLED\]'; then
    echo "not registered: registration is switched off on netuid $netuid by the subnet owner."
    echo "Next: watch 'btcli subnets hyperparameters --netuid $netuid -n $network' (registration_allowed)."
  elif says 'RegistrationPriceLimitExceeded|SlippageTooHigh|error\[LIMIT_EXCEEDED\]|error\[INSUFFICIENT_LIQUIDITY\]'; then
    echo "not registered: the registration cost moved between the preview and the submission."
    echo "Nothing was spent. Next: rerun; the preview shows the new cost."
  elif says 'NotEnoughBalance|BalanceLow|InsufficientBalance|InsufficientTaoBalance|inability to pay|carrier fee|error\[INSUFFICIENT_BALANCE\]'; then
    echo "not registered: the coldkey's free TAO does not cover the registration cost plus fees"
    echo "(the MEV-shield carrier fee is paid in free TAO; staked alpha does not count)."
    echo "Next: fund the coldkey (btcli wallet balance -n $network -w $wallet), then rerun."
  elif says 'SubnetNotExists|SubNetworkDoesNotExist|error\[SUBNET_NOT_EXISTS\]'; then
    echo "not registered: netuid $netuid does not exist on '$network'."
    echo "Next: check --network and --netuid (btcli subnets list -n $network)."
  elif says 'RegistrationNotPermittedOnRootSubnet|CannotBurnOrRecycleOnRootSubnet'; then
    echo "not registered: netuid 0 is the root network. Next: use --netuid 234."
  elif says 'NonAssociatedColdKey|ColdkeySwap|error\[NOT_AUTHORIZED\]'; then
    echo "not registered: this hotkey belongs to another coldkey, or a coldkey swap is pending on"
    echo "this one. Next: use a hotkey created under wallet '$wallet' (btcli wallet new-hotkey)."
  elif says 'SubtokenDisabled|error\[SUBTOKEN_DISABLED\]'; then
    echo "not registered: netuid $netuid is not started yet (no start call). Next: wait and rerun."
  elif says 'decrypt|password|Invalid password'; then
    echo "not registered: the coldkey could not be unlocked. Next: rerun and type its password."
  elif says 'connect|Connection|timed out|unreachable|RpcConnectionError|MaxRetriesExceeded'; then
    echo "not registered: the '$network' endpoint could not be reached. Nothing was spent."
    echo "Next: check connectivity / --network, then rerun."
  else
    echo "not registered: btcli reported the error above (run 'btcli explain CODE' for details)."
    echo "Next: check 'btcli wallet registrations -n $network -w $wallet -H $hotkey' before retrying."
  fi
  return 1
}

# Run one `btcli subnets register` (preview or real), showing its output as it comes; on failure
# explain it and stop, except when the hotkey is already registered (returns 3 then) or the
# outcome of a shielded submission is unknown (the uid check runs, then the script fails).
register_step() {
  local log status
  log="$(mktemp)"
  echo "+ $*"
  set +e
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -eq 0 ]; then rm -f "$log"; return 0; fi
  local explained=0
  explain_failure "$(cat "$log")" || explained=$?
  rm -f "$log"
  case "$explained" in
    0) return 3 ;;
    2) run btcli wallet registrations -n "$network" "${wallet_args[@]}" --netuid "$netuid" || true
       exit "$status" ;;
    *) exit "$status" ;;
  esac
}

echo "== 3. register (preview first)"
registered=0
register_step btcli subnets register --netuid "$netuid" -n "$network" "${wallet_args[@]}" --dry-run \
  || registered=1
if [ "$registered" -eq 1 ]; then
  echo "   skipping registration: the hotkey is already registered"
elif [ "$dry_run" -eq 1 ]; then
  echo "+ btcli subnets register --netuid $netuid -n $network ${wallet_args[*]} --yes (dry run: not run)"
else
  if [ "$assume_yes" -ne 1 ]; then
    read -r -p "Spend the registration cost shown above on netuid $netuid ($network)? [y/N] " answer
    case "$answer" in y|Y|yes|YES) ;; *) echo "not registering"; exit 1 ;; esac
  fi
  register_step btcli subnets register --netuid "$netuid" -n "$network" "${wallet_args[@]}" --yes \
    || true
fi

echo "== 4. check the uid"
run btcli wallet registrations -n "$network" "${wallet_args[@]}" --netuid "$netuid"

if [ -n "$ip" ] && [ -n "$port" ]; then
  echo "== 5. publish the miner endpoint (the miner also does this itself at start)"
  mutate btcli tx serve-axon --netuid "$netuid" --ip "$ip" --port "$port" -n "$network" \
    "${wallet_args[@]}" --yes
fi
echo "done: start the node with pm2 (see README.md)"
