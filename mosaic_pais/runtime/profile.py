"""Where a run's time goes: seconds per part of each stage, summed over tasks and workers.

A stage's wall time (``timings_s`` in run.json) says how long the run waited for it; this says
what its tasks spent their time on (reading, the network, Zarr writes, checksums, …), in
task-seconds: with two workers busy, a stage of 10 s wall can hold 20 task-seconds.

Each process keeps its own tally (tasks of a distributed worker run in that worker's
process); :func:`gather` collects the tallies of the workers and of this process, and resets
them.

>>> with timed("demo: part"):
...     pass
>>> sorted(take())
['demo: part']
>>> take()
{}
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

__all__ = ["timed", "take", "gather"]

_LOCK = threading.Lock()
_SECONDS: defaultdict[str, float] = defaultdict(float)


@contextmanager
def timed(part: str):
    """Add the seconds spent in the ``with`` block to ``part`` ("stage: part")."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        with _LOCK:
            _SECONDS[part] += elapsed


def take() -> dict[str, float]:
    """This process's tally since the last call, which empties it."""
    with _LOCK:
        tally = dict(_SECONDS)
        _SECONDS.clear()
    return tally


def gather(client=None) -> dict[str, float]:
    """The tallies of this process and of every worker of ``client``, summed and reset."""
    tallies = [take()]
    if client is not None:
        tallies += list(client.run(take).values())
    total: defaultdict[str, float] = defaultdict(float)
    for tally in tallies:
        for part, seconds in tally.items():
            total[part] += seconds
    return dict(sorted(total.items()))
