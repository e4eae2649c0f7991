# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""host/locks.py: two processes contend for a pod's lock; the directory and files are never followed links."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import LockTimeout, pod_lock, resource_lock, try_lock

CTX = multiprocessing.get_context("fork")


def _hold(root: str, pod: str, seconds: float, ready: Any) -> None:
    with pod_lock(root, pod):
        ready.set()
        time.sleep(seconds)


def _holder(root: Path, pod: str, seconds: float) -> Any:
    ready = CTX.Event()
    proc = CTX.Process(target=_hold, args=(str(root), pod, seconds, ready))
    proc.start()
    assert ready.wait(10)
    return proc


def test_a_second_task_waits_then_gets_the_lock(tmp_path: Path) -> None:
    proc = _holder(tmp_path, "web", 0.6)
    start = time.monotonic()
    with pod_lock(str(tmp_path), "web", timeout=10) as waited:
        assert waited >= 0.3 and time.monotonic() - start >= 0.3
        assert not proc.is_alive() or proc.join(5) is None
    proc.join(5)
    assert os.listdir(tmp_path / "locks") == []  # removed after use


def test_a_wait_in_vain_names_the_pod_and_the_holder(tmp_path: Path) -> None:
    proc = _holder(tmp_path, "web", 3)
    try:
        with pytest.raises(LockTimeout) as caught, pod_lock(str(tmp_path), "web", timeout=0.5):
            raise AssertionError("got a lock that another process holds")
        message = caught.value.message
        assert "hyper_pod task for pod web: waited 0.5 s for the lock" in message
        assert f"held all that time by pid {proc.pid}, hyper_pod task for pod web, since " in message
    finally:
        proc.terminate()
        proc.join(5)
    # The kernel dropped the dead holder's lock: the next task gets it at once.
    with pod_lock(str(tmp_path), "web", timeout=0.5) as waited:
        assert waited < 0.5


def test_other_pods_do_not_wait(tmp_path: Path) -> None:
    proc = _holder(tmp_path, "web", 2)
    try:
        with pod_lock(str(tmp_path), "db", timeout=0.2):
            pass
        with resource_lock(str(tmp_path), "db", timeout=0.2):
            pass
    finally:
        proc.terminate()
        proc.join(5)


def test_try_lock_and_removal_never_admit_two(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    with try_lock(path, "t") as first:
        assert first
        with try_lock(path, "t") as second:
            assert not second
    assert not os.path.exists(path)


def test_the_lock_directory_is_root_only_and_never_a_symlink(tmp_path: Path) -> None:
    with pod_lock(str(tmp_path), "web"):
        assert stat.S_IMODE(os.stat(tmp_path / "locks").st_mode) == 0o700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "locks").symlink_to(elsewhere)
    with pytest.raises(HyperError, match="is not a directory"), pod_lock(str(other), "web"):
        pass


def test_a_planted_symlink_as_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "locks" / "pod-web.lock").symlink_to(target)
    with pytest.raises(HyperError, match=r"cannot open the lock file .*pod-web\.lock"), pod_lock(str(tmp_path), "web", timeout=0.1):
        pass
    assert target.read_text() == "keep"
