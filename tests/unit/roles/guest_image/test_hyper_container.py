# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's hyper-container script under the host's busybox sh: the parts that need no crun or mounts.

status must print what GuestPod's parse_status accepts (the contract between the two sides), and
bad names and bad container.json values must be refused before anything happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import container_meta, parse_status

TEMPLATE = Path(__file__).resolve().parents[4] / "roles" / "guest_image" / "templates" / "hyper-container.sh.j2"
BUSYBOX = shutil.which("busybox")
SERIAL = "hyper-img-0123456789"

pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox on the host")


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    """The script with its /run/hyper moved under tmp_path (Jinja lines dropped: the body is one raw block)."""
    lines = [line for line in TEMPLATE.read_text().splitlines() if not line.startswith("{")]
    script = "\n".join(lines).replace("/run/hyper", str(tmp_path / "run")) + "\n"
    (tmp_path / "hyper-container").write_text(script)
    (tmp_path / "run" / "containers").mkdir(parents=True)
    return tmp_path


def hc(guest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BUSYBOX is not None
    return subprocess.run([BUSYBOX, "sh", str(guest / "hyper-container"), *args], capture_output=True, text=True, timeout=30, check=False)


def container(guest: Path, name: str, meta: dict[str, Any] | None = None, **files: str) -> Path:
    directory = guest / "run" / "containers" / name
    directory.mkdir()
    (directory / "container.json").write_text(json.dumps(meta or container_meta(name, {"serial": SERIAL}), separators=(",", ":")))
    (directory / "config.json").write_text("{}")
    for key, value in files.items():
        (directory / key).write_text(value)
    return directory


def test_status_of_no_containers_is_an_empty_object(guest: Path) -> None:
    result = hc(guest, "status")
    assert (result.returncode, result.stdout, result.stderr) == (0, "{}\n", "")


def test_status_prints_what_the_host_parses(guest: Path) -> None:
    container(guest, "new")
    container(guest, "db", status="exited\n", exit_code="3\n", restarts="2\n")
    # A live "supervisor": this test's own process is no hyper-container, so a running claim is not believed.
    container(guest, "web", status="running\n", pid="123\n", restarts="1\n", exit_code="137\n", supervisor=f"{os.getpid()}\n")
    container(guest, "odd", status="dancing\n", pid="x\n", restarts="-\n", exit_code="1e3\n")
    (guest / "run" / "containers" / "not.a.container").mkdir()
    (guest / "run" / "containers" / "Bad").mkdir()
    (guest / "run" / "containers" / "Bad" / "container.json").write_text("{}")
    result = hc(guest, "status")
    assert result.returncode == 0, result.stderr
    assert parse_status(result.stdout) == {
        "db": {"status": "exited", "pid": None, "exit_code": 3, "restarts": 2},
        "new": {"status": "created", "pid": None, "exit_code": None, "restarts": 0},
        "odd": {"status": "unknown", "pid": None, "exit_code": None, "restarts": 0},
        "web": {"status": "exited", "pid": None, "exit_code": 137, "restarts": 1},
    }


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "usage: hyper-container start NAME"),
        (("frobnicate",), "usage:"),
        (("start",), "usage:"),
        (("start", "a", "b"), "usage:"),
        (("status", "web"), "usage:"),
        (("start", "../x"), "invalid container name '../x'"),
        (("start", "Web"), "invalid container name 'Web'"),
        (("stop", "-x"), "invalid container name '-x'"),
        (("logs", "a b"), "invalid container name 'a b'"),
        (("remove", ""), "invalid container name ''"),
        (("start", "ghost"), "container ghost: no "),
        (("stop", "ghost"), "no container ghost in this guest"),
        (("logs", "ghost"), "no container ghost in this guest"),
        (("logs", "ghost", "0"), "invalid line count '0'"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(guest: Path, args: tuple[str, ...], needle: str) -> None:
    result = hc(guest, *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("hyper-container: ")
    assert needle in result.stderr
    assert result.stderr.count("\n") == 1, "one line"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"serial": "hyper-img-"}, "invalid serial 'hyper-img-'"),
        ({"serial": "vda"}, "invalid serial 'vda'"),
        ({"serial": "hyper-img-0123/../x"}, "invalid serial"),
        ({"restart_policy": "sometimes"}, "invalid restart_policy 'sometimes'"),
        ({"stop_signal": "TERM;reboot"}, "invalid stop_signal"),
        ({"stop_timeout": "soon"}, "invalid stop_timeout ''"),
        ({"stop_timeout": 1.234}, "invalid stop_timeout '1.234'"),
    ],
)
def test_bad_container_json_stops_the_start_before_anything_happens(guest: Path, change: dict[str, Any], needle: str) -> None:
    directory = container(guest, "web", {**container_meta("web", {"serial": SERIAL}), **change})
    result = hc(guest, "start", "web")
    assert result.returncode == 1
    assert f"container web: {needle}" in result.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "container.json"]


@pytest.mark.parametrize("timeout", ["abc", "1.", ".5", "08", "1.234", "-1"])
def test_stop_refuses_a_bad_timeout(guest: Path, timeout: str) -> None:
    directory = container(guest, "web")
    result = hc(guest, "stop", "web", timeout)
    assert result.returncode == 1
    assert f"invalid timeout '{timeout}'" in result.stderr
    assert not (directory / "stop").exists()


def test_logs_prints_the_last_lines(guest: Path) -> None:
    container(guest, "web", log="".join(f"line {i}\n" for i in range(100)))
    assert hc(guest, "logs", "web", "3").stdout == "line 97\nline 98\nline 99\n"
    assert hc(guest, "logs", "web").stdout.count("\n") == 50
    container(guest, "quiet")
    assert (hc(guest, "logs", "quiet").returncode, hc(guest, "logs", "quiet").stdout) == (0, "")


def test_logs_reads_across_the_rotated_file(guest: Path) -> None:
    directory = container(guest, "web", log="".join(f"new {i}\n" for i in range(3)))
    (directory / "log.1").write_text("".join(f"old {i}\n" for i in range(10)))
    assert hc(guest, "logs", "web", "5").stdout == "old 8\nold 9\nnew 0\nnew 1\nnew 2\n"
    assert hc(guest, "logs", "web", "2").stdout == "new 1\nnew 2\n"


def test_remove_of_an_absent_container_is_no_error(guest: Path) -> None:
    result = hc(guest, "remove", "ghost")
    assert (result.returncode, result.stdout) == (0, "absent\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hyper-img-0123456789", "/run/hyper/volumes/data", "rw"], "invalid volume serial 'hyper-img-0123456789'"),
        (["hyper-vol-01;reboot", "/run/hyper/volumes/data", "rw"], "invalid volume serial"),
        (["hyper-vol-0123456789", "/etc", "rw"], "invalid target '/etc': not in /run/hyper/volumes"),
        (["hyper-vol-0123456789", "/run/hyper/volumes/../../etc", "rw"], "invalid target"),
        (["hyper-vol-0123456789", "/run/hyper/volumes/data", "rw,exec;x"], "invalid mount options"),
        (["hyper-vol-0123456789", "/run/hyper/volumes/data"], "usage: hyper-container"),
    ],
)
def test_mount_disk_checks_its_arguments(guest: Path, args: list[str], message: str) -> None:
    # The script's /run/hyper is moved under tmp_path; so are the targets it accepts.
    args = [a.replace("/run/hyper", str(guest / "run")) for a in args]
    result = hc(guest, "mount-disk", *args)
    assert result.returncode == 1
    assert message.replace("/run/hyper", str(guest / "run")) in result.stderr
    assert not (guest / "run" / "volumes").exists()


def test_mount_disk_names_a_serial_it_cannot_find(guest: Path) -> None:
    """No disk with that serial (the host has no virtio disks): an error after the disk wait, nothing made."""
    target = str(guest / "run" / "volumes" / "data")
    result = hc(guest, "mount-disk", "hyper-vol-0123456789", target, "rw,noatime")
    assert result.returncode == 1
    assert result.stderr == "hyper-container: no disk with serial hyper-vol-0123456789 in the guest\n"
    assert not (guest / "run" / "volumes").exists()


def test_container_json_is_read_by_key_not_by_a_value_of_that_name(guest: Path) -> None:
    # A container named "serial": its name's value must not be taken for the serial (the start then looks for the disk).
    container(guest, "serial", container_meta("serial", {"serial": SERIAL, "stop_timeout": 2.5, "restart_policy": "always"}))
    result = hc(guest, "start", "serial")
    assert result.returncode == 1
    assert f"container serial: no disk with serial {SERIAL}" in result.stderr
