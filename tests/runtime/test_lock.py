"""The output folder's lock: held, refused, stale, taken over, released."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from mosaic_pais.errors import BadInputError
from mosaic_pais.runtime.lock import LOCK_NAME, STALE_SECONDS, hold_output, is_stale, lock_holder


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder, **record):
    folder.mkdir(exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"started": time.time(), **record}))


def test_a_live_holder_refuses_another_run(tmp_path):
    with hold_output(tmp_path, takeover=False) as record:
        for takeover in (False, True):
            with pytest.raises(BadInputError, match=f"in use by another run .pid {os.getpid()}"):
                with hold_output(tmp_path, takeover=takeover):
                    pass
        assert lock_holder(tmp_path)["token"] == record["token"]  # still the first's
    assert lock_holder(tmp_path) is None


def test_a_dead_holder_on_this_host_is_stale(tmp_path):
    pid = _dead_pid()
    _write_lock(tmp_path, host=socket.gethostname(), pid=pid)
    assert is_stale(lock_holder(tmp_path))
    with pytest.raises(BadInputError, match="died.*--resume"):
        with hold_output(tmp_path, takeover=False):
            pass
    with hold_output(tmp_path, takeover=True) as record:
        assert lock_holder(tmp_path)["pid"] == os.getpid() == record["pid"]
    assert lock_holder(tmp_path) is None


def test_a_holder_on_another_host_is_stale_only_when_silent(tmp_path):
    _write_lock(tmp_path, host="elsewhere.example", pid=1)
    assert not is_stale(lock_holder(tmp_path))
    old = time.time() - 2 * STALE_SECONDS
    os.utime(tmp_path / LOCK_NAME, (old, old))
    assert is_stale(lock_holder(tmp_path))


def test_a_lock_being_written_counts_as_held(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    assert not is_stale(lock_holder(tmp_path))


def test_a_lock_taken_over_is_not_removed_by_its_former_holder(tmp_path):
    with hold_output(tmp_path, takeover=False):
        (tmp_path / LOCK_NAME).unlink()
        _write_lock(tmp_path, host="elsewhere.example", pid=1, token="theirs")
    assert lock_holder(tmp_path)["token"] == "theirs"
