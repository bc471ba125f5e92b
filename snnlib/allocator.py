"""Keep freed memory inside the process (glibc malloc), so that tensor buffers are reused instead of re-faulted.

glibc serves an allocation above its mmap threshold (128 KiB at start, raised to the size of each freed mapping,
at most 32 MiB) with a fresh mapping and returns it to the kernel on free; and it hands the top of its heap back
whenever more than the trim threshold lies free there. A simulation allocates and frees tensors of a few MiB at
every layer and chunk (membranes, chunk outputs, GEMM slices), so the same memory went back to the kernel and came
back as zero-filled pages, one page fault per 4 KiB: measured on the 2-core machine, 50,000-80,000 faults in one
ResNet-20 simulation of 16 images and 16 steps (200-300 MB), against none for the dense network. PyTorch's CPU
performance guide recommends a caching allocator (jemalloc, tcmalloc) for the same reason; two `mallopt` settings
get the effect from glibc without a preload: allocations up to 256 MiB come from the heap, which keeps what it grew
to (the numbers below; docs/engine.md).

`keep_freed_memory()` is called by the command-line stages and the benchmarks at start, never by the library on
import: it changes how the whole process allocates. It changes no result (a default DAG run with it came out
identical to one without, every row and per-image outcome), only speed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
# Allocations up to 256 MiB come from the heap, whose top goes back to the kernel only when 256 MiB of it lie free.
# Measured on the default's fashion_vgg evaluation (QCFS, 1,000 images, T = 64): 42.4 s -> 26.7 s at 590 -> 571 MB
# peak RSS; with 1 GiB instead, COS's whole-run buffers (up to ~850 MB each) came from the heap too: 106 -> 64 s,
# but 4.7 -> 6.2 GB peak RSS, past the 4 GB a job asks of SLURM. At 256 MiB COS stays at 99 s and 4.7 GB.
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 256 << 20

_STATE: list[str] = []


def keep_freed_memory() -> str:
    """Set glibc's mmap and trim thresholds (once per process); returns what was done, for the logs and records."""
    if _STATE:
        return _STATE[0]
    done = "unchanged (not glibc)"
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            trim_ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            if mmap_ok and trim_ok:
                done = f"glibc mallopt: mmap_threshold={MMAP_THRESHOLD}, trim_threshold={TRIM_THRESHOLD}"
            else:  # name what did take effect: a refused second call leaves the first one set
                done = (f"partly (glibc refused mallopt for the {'trim' if mmap_ok else 'mmap'} threshold"
                        + (f"; mmap_threshold={MMAP_THRESHOLD}" if mmap_ok else "")
                        + (f"; trim_threshold={TRIM_THRESHOLD}" if trim_ok else "") + ")"
                        if mmap_ok or trim_ok else "unchanged (glibc refused mallopt)")
        except (OSError, AttributeError) as error:
            done = f"unchanged ({type(error).__name__}: {error})"
    _STATE.append(done)
    return done


def setting() -> str:
    """What `keep_freed_memory` did in this process, or that it was not called."""
    return _STATE[0] if _STATE else "glibc default (keep_freed_memory not called)"
