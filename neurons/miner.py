"""pm2 entry point for a TuneForge miner: parse flags, then run (see tuneforge/miner/run.py)."""

from __future__ import annotations

import sys

from tuneforge.core.config import parse_settings
from tuneforge.miner.config import MinerSettings


def main(argv: list[str]) -> int:
    from pydantic import ValidationError

    from tuneforge.core.wallets import WalletError
    from tuneforge.miner.run import MinerStartupError, run

    try:
        settings = parse_settings(MinerSettings, argv, description="TuneForge miner (subnet 234)")
    except ValidationError as exc:
        # A bad flag value (e.g. --miner.ip_source dns) is the operator's to fix: say which.
        print(f"miner: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        run(settings)
    except (MinerStartupError, WalletError) as exc:
        print(f"miner: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
