"""Checks every chain implementation applies before it writes: the real chain and LocalChain
refuse the same inputs with the same `ChainError`, so a test on the double tells the truth."""

from __future__ import annotations

import ipaddress
import math

from tuneforge.chain.base import ChainError, ChainErrorCode


def format_axon(ip: str, port: int) -> str:
    """Validate and format an axon address as "ip:port" ("[v6]:port" for IPv6)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise ChainError(ChainErrorCode.INVALID, f"axon ip {ip!r} is not an IP address") from None
    if not 1 <= int(port) <= 65535:
        raise ChainError(ChainErrorCode.INVALID, f"axon port {port} is outside 1..65535")
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{int(port)}"


def normalize_weights(weights: dict[int, float]) -> dict[int, float]:
    """Weights scaled to sum 1 with zeros dropped; negatives, NaN and all-zero are INVALID."""
    if not weights:
        raise ChainError(ChainErrorCode.INVALID, "no weights given")
    for uid, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ChainError(
                ChainErrorCode.INVALID, f"weight for uid {uid} must be finite and >= 0: {weight}"
            )
    total = math.fsum(weights.values())
    if total <= 0:
        raise ChainError(
            ChainErrorCode.INVALID,
            "all weights are zero",
            "skip setting weights until at least one miner has a positive score",
        )
    return {int(uid): w / total for uid, w in sorted(weights.items()) if w > 0}
