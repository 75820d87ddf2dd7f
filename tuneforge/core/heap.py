"""Return freed arrays to the operating system at once (glibc only).

glibc serves a large allocation (above its mmap threshold, 128 KiB at first) with its own
mapping and unmaps it on free. But each such free *raises* the threshold to the freed size (up
to 32 MiB), so after the first decoded clip is freed, later clip-sized arrays come from the heap
arenas instead, and what they leave behind stays resident: the validator sat at ~885 MB through
a 64-answer round holding ~245 MB of answers (D56). A fixed threshold turns that dynamic rule
off, so a clip's arrays go back to the system the moment they are freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# Above this size an allocation gets its own mapping: a 30 s stereo clip's float32 arrays are
# megabytes, an STFT frame or a small list is far below it.
MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
# Read by glibc when a process starts: the scoring workers (spawned) inherit it.
_ENVIRONMENT = "MALLOC_MMAP_THRESHOLD_"


def release_freed_memory_promptly() -> bool:
    """Fix glibc's mmap threshold in this process and in the processes it spawns from now on.
    True when this process's allocator took it (False off glibc: nothing to do there)."""
    if _ENVIRONMENT in os.environ:  # the operator's own value: glibc read it at start-up
        return True
    os.environ[_ENVIRONMENT] = str(MMAP_THRESHOLD_BYTES)
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): no such knob
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
