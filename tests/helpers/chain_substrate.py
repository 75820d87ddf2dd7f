"""An in-memory `bittensor` Substrate: the SDK's own offline seam (DESIGN.md §2).

`bt.Subtensor("local", substrate=FakeSubstrate(...))` runs the real SDK read decoding and intent
building against this state, with no network. It answers exactly what SDK 11.3 asks for the
metagraph, uid lookups, hyperparameters and `SetWeights`/`ServeAxon` — including the storage the
SDK reads to build a commit-reveal (timelocked) commit; `submit` applies a composed
`set_mechanism_weights`/`commit_timelocked_mechanism_weights`/`serve_axon` call to the state so
the adapter's write path is exercised end to end (the real chain's extrinsic encoding and
signing are not simulated). Serving is rate-limited like the chain's ServingRateLimit, and
`drop()`/`restore()` take the "endpoint" away and back, as a node restart does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bittensor.balance import Balance
from bittensor.result import ChainError, ExtrinsicResult, RpcConnectionError

RAO_PER_TAO = 10**9


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_tao: float = 0.0
    validator_permit: bool = False
    last_update: int = 0
    axon: dict[str, int] | None = None  # {"ip": int, "port": int, "ip_type": 4|6}


@dataclass
class FakeSubstrate:
    netuid: int
    block: int = 1_000
    weights_rate_limit: int = 100
    commit_reveal: bool = False
    min_allowed_weights: int = 0
    max_weights_limit: int = 65_535
    neurons: list[FakeNeuron] = field(default_factory=list)
    submitted: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[int, dict[int, int]] = field(default_factory=dict)
    token_symbols: dict[int, str] = field(default_factory=dict)
    weights_version: int = 0
    serving_rate_limit: int = 0
    tempo: int = 360
    reveal_period_epochs: int = 1
    # hotkey -> (commit block, reveal round, commit bytes) of timelocked commits
    commits: dict[str, tuple[int, int, bytes]] = field(default_factory=dict)
    last_served: dict[int, int] = field(default_factory=dict)
    connects: int = 0
    down: bool = False

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance.from_rao(rao, netuid, self.token_symbols.get(netuid))

    # lifecycle / clock
    def drop(self) -> None:
        """The endpoint goes away: every request fails as the SDK's transport reports it."""
        self.down = True

    def restore(self) -> None:
        self.down = False

    def _check_up(self) -> None:
        if self.down:
            raise RpcConnectionError("connection to ws://fake closed (endpoint restarting)")

    async def connect(self) -> None:
        self._check_up()
        self.connects += 1

    async def close(self) -> None:
        return None

    async def block_hash(self, block: int | None = None) -> str:
        return f"0x{(self.block if block is None else block):064x}"

    async def block_number(self) -> int:
        self._check_up()
        return self.block

    async def finalized_block_number(self) -> int:
        return self.block

    async def block_time(self) -> float:
        return 12.0

    async def spec_version(self) -> int:
        return 400

    # reads
    def _uid(self, hotkey: str) -> int | None:
        return next((i for i, n in enumerate(self.neurons) if n.hotkey == hotkey), None)

    async def query(
        self, module: str, fn: str, params: list | None = None, block_hash: str | None = None
    ) -> Any:
        self._check_up()
        params = params or []
        answers = {
            "Uids": lambda: self._uid(params[1]) if params[0] == self.netuid else None,
            "CommitRevealWeightsEnabled": lambda: self.commit_reveal,
            "WeightsSetRateLimit": lambda: self.weights_rate_limit,
            "LastUpdate": lambda: [n.last_update for n in self.neurons],
            "MinAllowedWeights": lambda: self.min_allowed_weights,
            "MaxWeightsLimit": lambda: self.max_weights_limit,
            "SubnetEpochConsensus": lambda: "Yuma",
            "ValidatorPermit": lambda: [n.validator_permit for n in self.neurons],
            "WeightsVersionKey": lambda: self.weights_version,
            "ServingRateLimit": lambda: self.serving_rate_limit,
            # What the SDK reads to place a timelocked commit's drand reveal round.
            "Tempo": lambda: self.tempo,
            "RevealPeriodEpochs": lambda: self.reveal_period_epochs,
            "LastEpochBlock": lambda: self.block - self.block % (self.tempo + 1),
            "PendingEpochAt": lambda: 0,
            "SubnetEpochIndex": lambda: self.block // (self.tempo + 1),
            "BlocksSinceLastStep": lambda: self.block % (self.tempo + 1),
        }
        if fn not in answers:
            raise NotImplementedError(f"FakeSubstrate has no storage {module}.{fn}")
        return answers[fn]()

    async def query_map(
        self, module: str, fn: str, params: list | None = None, block_hash: str | None = None
    ) -> list[tuple[Any, Any]]:
        self._check_up()
        if fn == "Uids":
            return [(n.hotkey, uid) for uid, n in enumerate(self.neurons)]
        return []  # token symbols, commitments: none on this fake subnet

    async def runtime_call(
        self, api: str, method: str, params: list, block_hash: str | None = None
    ) -> Any:
        self._check_up()
        if method != "get_metagraph":
            raise NotImplementedError(f"FakeSubstrate has no runtime call {api}.{method}")
        if params[0] != self.netuid:
            return None
        stakes = [int(n.stake_tao * RAO_PER_TAO) for n in self.neurons]
        n = len(self.neurons)
        return {
            "netuid": self.netuid,
            "name": list(b"tuneforge"),
            "symbol": list(b"T"),
            "block": self.block,
            "tempo": 360,
            "last_step": self.block - 10,
            "blocks_since_last_step": 10,
            "owner_hotkey": self.neurons[0].hotkey if self.neurons else "",
            "owner_coldkey": self.neurons[0].coldkey if self.neurons else "",
            "network_registered_at": 1,
            "num_uids": n,
            "max_uids": 256,
            "hotkeys": [x.hotkey for x in self.neurons],
            "coldkeys": [x.coldkey for x in self.neurons],
            "axons": [x.axon or {"ip": 0, "port": 0, "ip_type": 4} for x in self.neurons],
            "active": [True] * n,
            "validator_permit": [x.validator_permit for x in self.neurons],
            "last_update": [x.last_update for x in self.neurons],
            "block_at_registration": [1] * n,
            "alpha_stake": stakes,
            "tao_stake": [0] * n,
            "total_stake": stakes,
            "emission": [0] * n,
        }

    # calls
    async def compose(self, call: Any) -> dict[str, Any]:
        module, function, params = call
        return {"call_module": module, "call_function": function, "call_args": dict(params)}

    async def estimate_fee(self, call: Any, keypair: Any) -> Balance:
        return Balance.from_rao(0)

    async def submit(self, call: dict[str, Any], keypair: Any, **_: Any) -> ExtrinsicResult:
        """Apply a composed call signed by `keypair` (a hotkey) to the fake state."""
        self._check_up()
        self.submitted.append(call)
        uid = self._uid(keypair.ss58_address)
        args = call["call_args"]
        if call["call_function"] == "set_mechanism_weights":
            if args["version_key"] < self.weights_version:
                return _refused("IncorrectWeightVersionKey", "version_key below weights_version")
            self.weights[uid] = dict(zip(args["dests"], args["weights"], strict=True))
            self.neurons[uid].last_update = self.block
        elif call["call_function"] == "commit_timelocked_mechanism_weights":
            # Hidden until the chain decrypts it at the drand reveal round; nothing to reveal.
            self.commits[keypair.ss58_address] = (
                self.block,
                int(args["reveal_round"]),
                bytes(args["commit"]),
            )
            self.neurons[uid].last_update = self.block
        elif call["call_function"] == "serve_axon":
            last = self.last_served.get(uid)
            if last is not None and self.block - last < self.serving_rate_limit:
                return _refused("ServingRateLimitExceeded", "served too recently")
            self.last_served[uid] = self.block
            self.neurons[uid].axon = {
                "ip": args["ip"],
                "port": args["port"],
                "ip_type": args["ip_type"],
            }
        return ExtrinsicResult(success=True, message="included in fake block")


def _refused(name: str, message: str) -> ExtrinsicResult:
    """A chain-side dispatch failure, as the SDK reports one."""
    return ExtrinsicResult(success=False, message=message, error=ChainError(message, name=name))
