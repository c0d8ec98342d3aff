"""One run per output folder: a lock file naming its holder.

Two runs given the same ``--output`` (two batch jobs with the same arguments) would write
into each other's stores. A run therefore creates ``.mosaic-pais.lock`` in its output folder
atomically (``O_CREAT | O_EXCL``, which network file systems honour for a single file) and
holds it until it ends; the file names the holder (host, pid, start time) and a heartbeat
thread touches it every :data:`HEARTBEAT_SECONDS`. Another run on the folder is refused with
one line naming the holder. A lock whose holder is dead does not block for ever: it is *stale*
when its host is this one and its pid is gone, or when its heartbeat is older than
:data:`STALE_SECONDS` (a holder on another host cannot be asked), and ``--resume`` or
``--overwrite`` take a stale lock over.

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with hold_output(folder, takeover=False) as holder:
...     holder["pid"] == os.getpid(), (folder / LOCK_NAME).exists()
(True, True)
>>> (folder / LOCK_NAME).exists()
False
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from mosaic_pais.errors import BadInputError

__all__ = ["HEARTBEAT_SECONDS", "LOCK_NAME", "STALE_SECONDS", "hold_output", "lock_holder",
           "is_stale"]

LOCK_NAME = ".mosaic-pais.lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0


def lock_holder(folder: Path) -> dict | None:
    """The holder recorded in ``folder``'s lock, or None without a lock. A lock file being
    written this instant reads as a holder with no pid (held)."""
    path = Path(folder) / LOCK_NAME
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        holder = {}
    return {**holder, "heartbeat_age": age}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def is_stale(holder: dict) -> bool:
    """Whether a lock's holder is dead: on this host with its pid gone, or silent for longer
    than :data:`STALE_SECONDS`."""
    if holder.get("heartbeat_age", 0.0) > STALE_SECONDS:
        return True
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and pid is not None \
        and not _pid_alive(int(pid))


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {when}"


def _create(path: Path, record: dict) -> bool:
    """Create the lock file atomically; False if it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    return True


def _acquire(folder: Path, takeover: bool) -> dict:
    path = folder / LOCK_NAME
    record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
              "token": os.urandom(8).hex()}
    for _ in range(3):
        if _create(path, record):
            return record
        holder = lock_holder(folder)
        if holder is None:
            continue  # released meanwhile
        if not is_stale(holder):
            raise BadInputError(f"output directory {folder} is in use by another run "
                                f"({_describe(holder)})")
        if not takeover:
            raise BadInputError(f"output directory {folder} holds the lock of a run that "
                                f"died ({_describe(holder)}): use --resume to continue it or "
                                "--overwrite to replace it")
        path.unlink(missing_ok=True)  # a stale lock: taken over
    raise BadInputError(f"output directory {folder}: could not take its lock")


def _heartbeat(path: Path, token: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            if json.loads(path.read_text()).get("token") != token:
                return  # taken over: not ours to touch
            os.utime(path)
        except (OSError, ValueError):
            return


@contextmanager
def hold_output(folder: Path, takeover: bool):
    """Hold ``folder``'s lock for the duration of the block (the folder is created).

    Raises :class:`~mosaic_pais.errors.BadInputError` when another live run holds it, or when
    a dead run's lock is found and ``takeover`` (``--resume``/``--overwrite``) is not given.
    Yields the record written (host, pid, started, token); the lock is removed at the end if
    it is still this run's.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = _acquire(folder, takeover)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(folder / LOCK_NAME, record["token"], stop),
                            daemon=True, name="mosaic-pais-lock")
    beat.start()
    try:
        yield record
    finally:
        stop.set()
        holder = lock_holder(folder)
        if holder is not None and holder.get("token") == record["token"]:
            (folder / LOCK_NAME).unlink(missing_ok=True)
