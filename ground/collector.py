"""Python's cyclic garbage collector paused while a step makes hundreds of thousands of records.

    collector_paused()      a context manager: the collector off inside, as it was after

A request of 200,000 children read into records, a register of 50,000 pupils, 200,000 answers:
each record made counts towards the collector's next pass, and each pass over everything the
process holds costs more than the records themselves (a third to a half of those steps). The
records hold no reference cycles: reference counting frees them, the pause loses nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector disabled inside the block, enabled again after it if it was
    before (whether the block ends or raises)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
