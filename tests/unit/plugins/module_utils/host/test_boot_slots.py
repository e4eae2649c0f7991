# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's boot slots (real flocks, a fake clock), their host.json settings, and the async check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.boot_slots import (
    ASYNC_MARGIN,
    DEFAULT_QUEUE_TIMEOUT,
    BootQueueTimeout,
    BootSlots,
    BootSlotSettings,
    async_too_short,
    boot_slot_settings,
    host_cpus,
    load_boot_slot_settings,
)
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock

# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({}, BootSlotSettings(4, DEFAULT_QUEUE_TIMEOUT)),
        ({"boot_slots": 0}, BootSlotSettings(4, DEFAULT_QUEUE_TIMEOUT)),
        ({"boot_slots": 1}, BootSlotSettings(1, DEFAULT_QUEUE_TIMEOUT)),
        ({"boot_slots": 16, "boot_queue_timeout": 0}, BootSlotSettings(16, 0.0)),
        ({"boot_queue_timeout": 12.5}, BootSlotSettings(4, 12.5)),
        ({"qemu_binary": "/usr/bin/qemu-system-x86_64"}, BootSlotSettings(4, DEFAULT_QUEUE_TIMEOUT)),
    ],
)
def test_settings(record: dict[str, Any], expected: BootSlotSettings) -> None:
    assert boot_slot_settings(record, "/r/host.json", cpus=4) == expected


@pytest.mark.parametrize(
    ("record", "key"),
    [
        ({"boot_slots": -1}, "boot_slots"),
        ({"boot_slots": True}, "boot_slots"),
        ({"boot_slots": "2"}, "boot_slots"),
        ({"boot_slots": 1.5}, "boot_slots"),
        ({"boot_slots": None}, "boot_slots"),
        ({"boot_queue_timeout": -1}, "boot_queue_timeout"),
        ({"boot_queue_timeout": "60"}, "boot_queue_timeout"),
        ({"boot_queue_timeout": False}, "boot_queue_timeout"),
        ({"boot_queue_timeout": float("inf")}, "boot_queue_timeout"),
        ({"boot_queue_timeout": float("nan")}, "boot_queue_timeout"),
    ],
)
def test_bad_settings_name_the_file_the_key_and_the_role_variable(record: dict[str, Any], key: str) -> None:
    with pytest.raises(ImageError) as err:
        boot_slot_settings(record, "/r/host.json", cpus=4)
    assert err.value.message.startswith(f"/r/host.json: {key} is {record[key]!r}")
    assert "hyper_host_boot_slots" in err.value.message


def test_settings_without_host_json_are_the_defaults(tmp_path: Path) -> None:
    assert load_boot_slot_settings(str(tmp_path), cpus=3) == BootSlotSettings(3, DEFAULT_QUEUE_TIMEOUT)


def test_settings_from_host_json(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"accelerator": "tcg", "format": 1, "boot_slots": 5, "boot_queue_timeout": 42}))
    assert load_boot_slot_settings(str(tmp_path), cpus=3) == BootSlotSettings(5, 42.0)


def test_a_broken_host_json_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{not json")
    with pytest.raises(ImageError, match=r"host\.json is not valid JSON"):
        load_boot_slot_settings(str(tmp_path))


def test_host_cpus_is_this_process_affinity() -> None:
    assert host_cpus() == len(os.sched_getaffinity(0)) >= 1


# -- slots -----------------------------------------------------------------------------------------


# Another task's boot: holds the slot file given as its argument until it is killed.
HOLDER = (
    "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"
)


def slots(tmp_path: Path, clock: FakeClock, count: int = 2, timeout: float = 10.0) -> BootSlots:
    return BootSlots(str(tmp_path / "locks" / "boot"), BootSlotSettings(count, timeout), clock, clock.sleep)


def test_boots_up_to_the_slots_do_not_wait(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock)
    with pool.hold("pod a") as first, pool.hold("pod b") as second:
        assert (first, second) == (0.0, 0.0)
        assert sorted(os.listdir(tmp_path / "locks" / "boot")) == ["slot-0.lock", "slot-1.lock"]
    assert clock.sleeps == []
    assert oct((tmp_path / "locks" / "boot").stat().st_mode & 0o777) == "0o700"


def test_one_boot_past_the_slots_queues_then_fails_clearly(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock, count=2, timeout=10.0)
    with pool.hold("pod a"), pool.hold("pod b"), pytest.raises(BootQueueTimeout) as err, pool.hold("pod c (VM hyper-0000000c)"):
        pytest.fail("a third boot got a slot of two")
    assert sum(clock.sleeps) >= 10.0
    message = err.value.message
    assert message.startswith("pod c (VM hyper-0000000c): waited 10 s for a boot slot, and all 2 of the host's boot slots stayed busy")
    assert "start fewer pods at once" in message
    assert err.value.details == {"step": "waiting for a boot slot", "boot_slots": 2, "boot_queue_timeout": 10.0}


def test_a_queued_boot_takes_the_slot_a_finished_boot_frees(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock, count=1, timeout=60.0)
    held = pool.hold("pod a")
    held.__enter__()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)
        if len(sleeps) == 8:  # pod a finishes its boot after eight polls of pod b
            held.__exit__(None, None, None)

    queued = BootSlots(pool.directory, pool.settings, clock, sleep)
    with queued.hold("pod b") as waited:
        assert waited == pytest.approx(sum(sleeps))
    assert len(sleeps) == 8 and max(sleeps) <= 0.25


def test_a_slot_is_freed_when_its_boot_fails(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock, count=1, timeout=0.0)
    with pytest.raises(HyperError, match="the boot failed"), pool.hold("pod a"):
        raise HyperError("the boot failed")
    with pool.hold("pod b") as waited:
        assert waited == 0.0


def test_zero_queue_timeout_fails_at_once(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock, count=1, timeout=0.0)
    with pool.hold("pod a"), pytest.raises(BootQueueTimeout, match="waited 0 s"), pool.hold("pod b"):
        pass
    assert clock.sleeps == []


def test_a_slot_held_by_another_process_counts_and_is_freed_when_it_dies(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock, count=1, timeout=0.0)
    os.makedirs(pool.directory)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLDER,
            pool.slot_path(0),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(BootQueueTimeout), pool.hold("pod a"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with pool.hold("pod a") as waited:  # the kernel dropped the dead process's lock
        assert waited == 0.0


def test_a_planted_symlink_is_not_followed(tmp_path: Path, clock: FakeClock) -> None:
    pool = slots(tmp_path, clock, count=1)
    os.makedirs(pool.directory)
    target = tmp_path / "elsewhere"
    os.symlink(target, pool.slot_path(0))
    with pytest.raises(HyperError, match=r"slot-0\.lock"), pool.hold("pod a"):
        pass
    assert not target.exists()


def test_an_uncreatable_slot_directory_is_a_clear_error(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "locks").write_text("a file where the directory goes")
    with pytest.raises(HyperError, match="pod a: cannot create the boot slot directory"), slots(tmp_path, clock).hold("pod a"):
        pass


def test_for_root_reads_host_json(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"accelerator": "kvm", "boot_slots": 7}))
    pool = BootSlots.for_root(str(tmp_path))
    assert pool.directory == str(tmp_path / "locks" / "boot")
    assert pool.settings == BootSlotSettings(7, DEFAULT_QUEUE_TIMEOUT)


# -- the async limit of a task that boots ----------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "state", "wait_timeout", "short"),
    [
        (600, None, None, False),
        (120 + ASYNC_MARGIN, "started", None, False),
        (120 + ASYNC_MARGIN - 1, "started", None, True),
        (60, None, None, True),
        (60, "restarted", 30, False),
        (60, "present", "120", True),
        ("60", "started", "300", True),
        (60, "absent", None, False),
        (60, "stopped", None, False),
        (0, "started", None, False),  # no async
        (60, "started", "{{ undefined }}", False),  # not a number: the module's argspec says so
        ("soon", "started", None, False),
    ],
)
def test_async_too_short(limit: object, state: Optional[str], wait_timeout: object, short: bool) -> None:
    why = async_too_short(limit, state, wait_timeout, 120)
    assert (why is not None) == short
    if why:
        assert why.startswith(f"async={int(str(limit))} is too short for this task")
        assert "half-made pod" in why and "set async to at least" in why
