"""pm2 entry point for a TuneForge validator: parse flags, then run (tuneforge/validator/run.py)."""

from __future__ import annotations

import sys

from tuneforge.core.config import parse_settings
from tuneforge.validator.config import ValidatorSettings


def main(argv: list[str]) -> int:
    settings = parse_settings(
        ValidatorSettings, argv, description="TuneForge validator (subnet 234)"
    )
    from tuneforge.chain.base import ChainError
    from tuneforge.core.wallets import WalletError
    from tuneforge.validator.run import ValidatorStartupError, run

    try:
        run(settings)
    except (ValidatorStartupError, WalletError) as exc:
        print(f"validator: {exc}", file=sys.stderr)
        return 2
    except ChainError as exc:
        print(f"validator: {exc} {exc.remediation}".rstrip(), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
