# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's healthcheck loop (hyper-container health) under the host's busybox sh, with a stand-in for crun.

The check command really runs (on the host); ``crun exec`` is a small script that writes its pid file and
runs the argv. What status prints afterwards must be what the host's parse_status accepts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import container_meta, parse_status
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.runtime_options import apply_options
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_checks import normalise_options

TEMPLATE = Path(__file__).resolve().parents[4] / "roles" / "guest_image" / "templates" / "hyper-container.sh.j2"
BUSYBOX = shutil.which("busybox")
SERIAL = "hyper-img-0123456789"

pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox on the host")

FAKE_CRUN = """#!/bin/sh
case "$1" in
exec)
    shift
    if [ "$1" = --pid-file ]; then echo $$ >"$2"; shift 2; fi
    shift
    exec "$@" ;;
*) echo "$*" >>"$(dirname "$0")/crun.log" ;;
esac
"""


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    lines = [line for line in TEMPLATE.read_text().splitlines() if not line.startswith("{")]
    script = "\n".join(lines).replace("/run/hyper", str(tmp_path / "run")) + "\n"
    fake = tmp_path / "crun"
    fake.write_text(FAKE_CRUN)
    fake.chmod(0o755)
    script = re.sub(r"\bcrun ", f"{fake} ", script)
    (tmp_path / "hyper-container").write_text(script)
    (tmp_path / "run" / "containers").mkdir(parents=True)
    return tmp_path


def container(guest: Path, name: str, healthcheck: dict[str, Any], policy: str = "never") -> Path:
    directory = guest / "run" / "containers" / name
    directory.mkdir()
    meta = container_meta(name, {"serial": SERIAL, "restart_policy": policy, "stop_timeout": 0})
    (directory / "container.json").write_text(json.dumps(meta, separators=(",", ":")))
    options = normalise_options({"healthcheck": healthcheck}, f"containers[{name}]", policy)
    config = apply_options({"root": {"path": "rootfs"}, "annotations": {"note": 'a "quoted", tricky \\ value'}}, options)
    (directory / "config.json").write_text(json.dumps(config, sort_keys=True, separators=(",", ":")))
    # The "container" is this test process: alive while the loop runs.
    (directory / "pid").write_text(f"{os.getpid()}\n")
    (directory / "status").write_text("running\n")
    return directory


def run_loops(guest: Path, names: list[str], seconds: float) -> None:
    assert BUSYBOX is not None
    loops = [subprocess.Popen([BUSYBOX, "sh", str(guest / "hyper-container"), "health", name]) for name in names]
    time.sleep(seconds)
    for loop in loops:
        loop.terminate()
        loop.wait(5)


def status(guest: Path) -> dict[str, Any]:
    assert BUSYBOX is not None
    result = subprocess.run([BUSYBOX, "sh", str(guest / "hyper-container"), "status"], capture_output=True, text=True, timeout=30, check=True)
    return dict(parse_status(result.stdout))


def test_checks_turn_healthy_and_unhealthy_with_their_output(guest: Path) -> None:
    container(guest, "good", {"test": ["CMD", "sh", "-c", "echo fine"], "interval": 1})
    container(guest, "bad", {"test": "echo 'broken'; printf '\\001x'; exit 3", "interval": 1, "retries": 2})
    container(guest, "slow", {"test": ["sleep", "5"], "interval": 1, "timeout": 1, "retries": 1})
    run_loops(guest, ["good", "bad", "slow"], 5.0)
    states = status(guest)
    good, bad, slow = states["good"]["health"], states["bad"]["health"], states["slow"]["health"]
    assert good["status"] == "healthy" and good["failing_streak"] == 0
    assert good["log"][0]["exit_code"] == 0 and good["log"][0]["output"] == "fine\n"
    assert bad["status"] == "unhealthy" and bad["failing_streak"] >= 2
    assert bad["log"][0] == {**bad["log"][0], "exit_code": 3, "output": "broken\n?x"}
    assert 2 <= len(bad["log"]) <= 5
    assert slow["status"] == "unhealthy"
    assert slow["log"][0]["exit_code"] is None and "timed out" in slow["log"][0]["output"]
    assert 0.9 <= slow["log"][0]["duration"] <= 3.0


def test_an_unhealthy_container_with_failure_action_restart_is_stopped_for_its_restart_policy(guest: Path) -> None:
    directory = container(guest, "phoenix", {"test": ["false"], "interval": 1, "retries": 1, "failure_action": "restart"}, policy="on-failure")
    run_loops(guest, ["phoenix"], 2.5)
    assert (directory / "health_restart").exists(), "the supervisor restarts it whatever its exit code"
    assert "kill phoenix SIGTERM" in (guest / "crun.log").read_text()


def test_a_container_without_a_check_has_no_health(guest: Path) -> None:
    directory = container(guest, "plain", {"test": ["NONE"]})
    run_loops(guest, ["plain"], 0.3)
    assert "health" not in status(guest)["plain"]
    assert not (directory / "health").exists()


def test_a_large_output_is_kept_to_4_kib(guest: Path) -> None:
    container(guest, "chatty", {"test": ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' a; exit 0"], "interval": 1})
    run_loops(guest, ["chatty"], 2.5)
    health = status(guest)["chatty"]["health"]
    assert health["status"] == "healthy"
    assert health["log"][0]["output"] == "a" * 4096


def test_a_result_newer_than_the_status_clock_has_age_zero(guest: Path) -> None:
    """A check may end between status reading the clock and reading its result: no negative age for the host to refuse."""
    directory = container(guest, "racy", {"test": ["true"], "interval": 1})
    (directory / "health").write_text("healthy\n")
    (directory / "health_streak").write_text("0\n")
    (directory / "health.1").write_text("0 99999999990 99999999999 b2sK\n")
    health = status(guest)["racy"]["health"]
    assert health["log"] == [{"exit_code": 0, "duration": 0.09, "age": 0.0, "output": "ok\n"}]
