"""One BLAS thread in a process that scores clips.

numpy's and scipy's OpenBLAS start a thread per core, and between the small matrix products of
the signal scorers those threads spin waiting for work. Scoring gets its parallelism from one
process per core (`--scoring.workers`), so the extra threads only burn CPU: on a 2-core machine
a 30 s clip took 2.0 CPU-s with them and 1.44 CPU-s without, in the same wall time (D65). One
thread everywhere also keeps a clip's floating-point sums in one order, in this process or in
a worker. torch keeps its own thread pool (neural models are batched on their device).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def use_one_blas_thread() -> None:
    """Limit every BLAS library loaded so far to one thread, for the rest of the process (the
    scorers' modules are imported by then; a few milliseconds)."""
    threadpool_limits(limits=1, user_api="blas")
