"""training.runtime.keep_freed_memory: the allocator keeps a step's large freed buffers for the next step instead of
returning them to the system."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

# A 32 MiB tensor, as large as a PTB step's logits, allocated and freed twice; the script prints how much
# memory glibc's malloc held in mmapped blocks while the tensor lived and how much freed memory it kept
# afterwards (mallinfo2). The allocator setting is process-wide, hence a process of its own. (Whether the
# kernel then faults kept pages in again is its own affair, and varies between machines.)
SCRIPT = """
import ctypes, sys, torch
from seqmodels.training.runtime import keep_freed_memory
FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
print(keep_freed_memory() if sys.argv[1] == "keep" else "default")
for _ in range(2):
    buffer = torch.ones(8 * 2**20)
    mapped = mallinfo2().hblkhd
    del buffer
    print(mapped, mallinfo2().fordblks)
"""

SIZE = 32 * 2**20


def mallinfo2() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc") and hasattr(ctypes.CDLL(None), "mallinfo2")
    except (AttributeError, ValueError, OSError):
        return False


def allocations(mode: str) -> tuple[str, list[tuple[int, int]]]:
    """What keep_freed_memory returned, and each pass' (bytes in mmapped blocks, freed bytes kept)."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    first, *passes = done.stdout.split("\n")[:3]
    return first, [(int(a), int(b)) for a, b in (line.split() for line in passes)]


@pytest.mark.slow
@pytest.mark.skipif(not mallinfo2(), reason="the setting exists in glibc's malloc only (mallinfo2: glibc >= 2.33)")
def test_freed_memory_is_kept_for_the_next_step_instead_of_returned():
    returned, passes = allocations("default")
    assert returned == "default"
    assert all(mapped >= SIZE and kept < SIZE for mapped, kept in passes)  # mmapped, and unmapped when freed
    took, passes = allocations("keep")
    assert took == "True"
    assert all(mapped < SIZE and kept >= SIZE for mapped, kept in passes)  # from the heap, and kept there
