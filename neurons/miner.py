"""pm2 entry point for a TuneForge miner: parse flags, then run (see tuneforge/miner/run.py)."""

from __future__ import annotations

import sys

from tuneforge.config import parse_settings
from tuneforge.miner.config import MinerSettings


def main(argv: list[str]) -> int:
    from tuneforge.miner.run import MinerStartupError, run
    from tuneforge.wallets import WalletError

    settings = parse_settings(MinerSettings, argv, description="TuneForge miner (subnet 234)")
    try:
        run(settings)
    except (MinerStartupError, WalletError) as exc:
        print(f"miner: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
