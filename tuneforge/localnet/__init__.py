"""`tuneforge localnet`: the whole subnet on 127.0.0.1 as real processes (DESIGN.md §8).

A services-floor orchestrator. It starts the roles exactly as operators do —
`neurons/miner.py`, `neurons/validator.py`, `python -m tuneforge.tools.cli api serve` — each in its
own process group with its log in the work directory, and reads results only through public
interfaces: the LocalChain file, `tuneforge validator status --json`, the validator's status
endpoint and the API over HTTP.
It never imports a role's insides, so what it shows is what an operator would see.

Every child dies with it: children are stopped (SIGTERM, then SIGKILL after a grace period) on
completion, error, Ctrl-C or SIGTERM via try/finally + atexit, and on Linux each child also gets
PR_SET_PDEATHSIG so even a SIGKILLed localnet leaves no orphan behind.

Modules: options (what a run is asked, errors), runtime (what a run's steps share), processes
(supervision), background (one call on a thread), numba_cache, models (scoring-model discovery),
role_flags (what the roles offer), chain_setup (LocalChain and wallets), launch (starting the
roles), observe (reading them), rounds, api_client (the API from its clients' side), votes and
preference (`--votes N`), results (gathering the report), report (leaderboard and text),
orchestrator (the Localnet class: the steps in order, and the teardown).
"""

from tuneforge.localnet.models import discover_models
from tuneforge.localnet.options import LocalnetError, LocalnetOptions, LocalnetStopped
from tuneforge.localnet.orchestrator import Localnet, quiet_logs
from tuneforge.localnet.processes import Child, Supervisor, pid_alive
from tuneforge.localnet.report import format_report, leaderboard

__all__ = [
    "Child",
    "Localnet",
    "LocalnetError",
    "LocalnetOptions",
    "LocalnetStopped",
    "Supervisor",
    "discover_models",
    "format_report",
    "leaderboard",
    "pid_alive",
    "quiet_logs",
]
