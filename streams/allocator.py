"""The C allocator in a worker: a large block freed goes back to the system at once.

glibc's ``malloc`` serves a block of 128 KiB or more with a mapping of its own, returned
to the system when freed, but after the first such free it raises that threshold to the
block's size (up to 32 MiB), and from then on serves those blocks from its heap, where
memory freed between blocks still in use stays with the process. A worker frees many
large blocks while it keeps small ones: the messages' bytes (an envelope of 1,000 events
is about 140 KB), and the lists and buffers of closed windows and raw rows, between
detector models and open windows that live on. Fixing the threshold at 128 KiB keeps
those blocks out of the heap.

Python's own objects (512 bytes or less) live in its arenas and are not affected; nor
is Arrow, which has an allocator of its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: ``M_MMAP_THRESHOLD`` of glibc's ``mallopt``.
_M_MMAP_THRESHOLD = -3
#: glibc's default threshold, kept from rising.
THRESHOLD = 128 * 1024


def return_large_blocks() -> bool:
    """Fix glibc's mapping threshold at :data:`THRESHOLD` for this process; False (and
    nothing changed) where the C library is not glibc (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if mallopt(_M_MMAP_THRESHOLD, THRESHOLD) != 1:
        log.warning("the C allocator refused a fixed mapping threshold")
        return False
    return True
