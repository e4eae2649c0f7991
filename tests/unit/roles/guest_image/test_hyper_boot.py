# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's hyper-boot under the host's busybox sh: a config disk the host built, carried out step by step.

The disk is the tar pod/config_disk.py builds; /run/hyper, /sys/block, /dev and hyper-container are
moved under tmp_path (hyper-container and the commands that would touch the host are fakes that log).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod import config_disk as cd

TEMPLATE = Path(__file__).resolve().parents[4] / "roles" / "guest_image" / "templates" / "hyper-boot.sh.j2"
BUSYBOX = shutil.which("busybox")

pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox on the host")

FAKE_CONTAINER = """#!/bin/sh
echo "hyper-container $*" >>"$FAKELOG"
case "$1" in
start) [ "$2" = broken ] && { echo "hyper-container: container broken: no disk with serial x" >&2; exit 1; }
       mkdir -p "$RUN/containers/$2"; echo running >"$RUN/containers/$2/status"; echo 42 >"$RUN/containers/$2/pid"; echo started ;;
status) echo '{"from":"status"}' ;;
esac
"""
FAKE_UP = 'echo "up $*" >>"$FAKELOG"\n'


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    lines = [line for line in TEMPLATE.read_text().splitlines() if not line.startswith("{")]
    script = "\n".join(lines)
    for old, new in (
        ("/run/hyper", str(tmp_path / "run")),
        ("/sys/block", str(tmp_path / "sys" / "block")),
        ("/sys/bus/virtio", str(tmp_path / "sys" / "bus" / "virtio")),
        ("dev=/dev/", f"dev={tmp_path}/dev/"),
        ("/dev/console", str(tmp_path / "console")),
        ("/usr/sbin/hyper-container", str(tmp_path / "hyper-container")),
        ("ip addr replace", "echo vip"),
    ):
        script = script.replace(old, new)
    (tmp_path / "hyper-boot").write_text(script + "\n")
    (tmp_path / "hyper-container").write_text(FAKE_CONTAINER)
    (tmp_path / "hyper-container").chmod(0o755)
    for disk, serial in (("vda", "hyper-img-0123456789"), ("vdb", "hyper-config")):
        (tmp_path / "sys" / "block" / disk).mkdir(parents=True)
        (tmp_path / "sys" / "block" / disk / "serial").write_text(serial + "\n")
    (tmp_path / "dev").mkdir()
    return tmp_path


def disk(guest: Path, steps: list[list[str]]) -> None:
    entries = [
        cd.Entry(cd.UP_SCRIPT, FAKE_UP.encode(), mode=0o755),
        cd.Entry("containers/web/config.json", b"{}", mode=0o600),
        cd.Entry("files/web/0", b"secret", 7, 8, 0o640),
        cd.Entry(cd.PLAN, cd.render_plan(steps)),
    ]
    # The disk as the host writes it: the header, the archive, the rest of the disk (zeros).
    (guest / "dev" / "vdb").write_bytes(cd.disk_image(cd.build_tar(entries)) + b"\0" * 65536)


def boot(guest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BUSYBOX is not None
    env = {"PATH": "/usr/bin:/bin", "FAKELOG": str(guest / "log"), "RUN": str(guest / "run")}
    return subprocess.run([BUSYBOX, "sh", str(guest / "hyper-boot"), *args], capture_output=True, text=True, timeout=60, check=False, env=env)


def status(guest: Path) -> str:
    return (guest / "run" / "boot" / "status").read_text().strip()


def test_run_carries_out_the_plan_in_order(guest: Path) -> None:
    disk(guest, [["net", "52:54:00:aa:bb:00", "dhcp", "10.88.0.1", "1"], ["disk", "hyper-vol-0123456789", "/run/hyper/volumes/d", "rw,noatime"],
                 ["start", "web"], ["start", "db"]])  # fmt: skip
    result = boot(guest, "run")
    assert result.returncode == 0, (result.stdout, result.stderr, (guest / "run" / "boot" / "log").read_text())
    assert status(guest) == "ok"
    assert (guest / "log").read_text().splitlines() == [
        "up 52:54:00:aa:bb:00 dhcp 10.88.0.1 1",
        "hyper-container mount-disk hyper-vol-0123456789 /run/hyper/volumes/d rw,noatime",
        "hyper-container start web",
        "hyper-container start db",
    ]
    assert (guest / "run" / "containers" / "web" / "config.json").read_text() == "{}"
    assert (guest / "run" / "files" / "web" / "0").read_text() == "secret"
    assert (guest / "run" / "boot" / "settled").exists()  # the guest settled the containers itself
    assert "pod-settled" in (guest / "console").read_text()
    # The wait the host makes: everything runs (steady for the settle time), then hyper-container status.
    waited = boot(guest, "wait", "10", "web", "db")
    assert (waited.returncode, waited.stdout) == (0, '{"from":"status"}\n'), waited.stderr


def test_a_failed_step_stops_the_boot_with_its_reason(guest: Path) -> None:
    disk(guest, [["start", "web"], ["start", "broken"], ["start", "never"]])
    assert boot(guest, "run").returncode == 1
    assert status(guest) == "failed: starting container broken failed: container broken: no disk with serial x"
    assert "never" not in (guest / "log").read_text()
    waited = boot(guest, "wait", "10", "web")
    assert waited.returncode == 1
    assert waited.stderr.strip() == "hyper-boot: starting container broken failed: container broken: no disk with serial x"


def test_no_config_disk_does_nothing(guest: Path) -> None:
    (guest / "sys" / "block" / "vdb" / "serial").write_text("hyper-img-9999999999\n")
    assert boot(guest, "run").returncode == 0
    assert not (guest / "run" / "boot" / "status").exists() and not (guest / "log").exists()
    waited = boot(guest, "wait", "1")
    assert waited.returncode == 1 and "did not finish (status: not started" in waited.stderr


def test_a_disk_without_the_header_is_refused(guest: Path) -> None:
    (guest / "dev" / "vdb").write_bytes(cd.build_tar([cd.Entry(cd.PLAN, b"start web\n")]) + b"\0" * 4096)
    assert boot(guest, "run").returncode == 1
    assert status(guest).startswith("failed: the config disk") and "no header hyper-config 1" in status(guest)
    assert not (guest / "log").exists()


def test_a_vm_without_any_virtio_disk_does_not_wait(guest: Path) -> None:
    shutil.rmtree(guest / "sys" / "block")
    (guest / "sys" / "block").mkdir()
    device = guest / "sys" / "bus" / "virtio" / "devices" / "virtio0"
    device.mkdir(parents=True)
    (device / "device").write_text("0x0003\n")  # a console, no block device
    started = time.monotonic()
    assert boot(guest, "run").returncode == 0
    assert time.monotonic() - started < 1.5  # DISK_WAIT is 3 s
    assert not (guest / "run" / "boot" / "status").exists()


def test_wait_without_names_returns_once_the_plan_is_done(guest: Path) -> None:
    disk(guest, [["start", "web"]])
    assert boot(guest, "run").returncode == 0
    (guest / "run" / "boot" / "settled").unlink()
    (guest / "run" / "containers" / "web" / "status").write_text("starting\n")
    waited = boot(guest, "wait", "30")
    assert waited.returncode == 0 and waited.stdout == '{"from":"status"}\n'


def test_wait_returns_when_a_container_exited(guest: Path) -> None:
    disk(guest, [["start", "web"]])
    assert boot(guest, "run").returncode == 0
    (guest / "run" / "boot" / "settled").unlink()
    (guest / "run" / "containers" / "web" / "status").write_text("exited\n")
    waited = boot(guest, "wait", "30", "web")
    assert waited.returncode == 0 and waited.stdout == '{"from":"status"}\n'  # the host reads the state and reports it


@pytest.mark.parametrize("args", [["wait"], ["wait", "x"], ["wait", "5", "-rf"], ["wait", "5", "a b"], ["other"], []])
def test_bad_arguments(guest: Path, args: list[str]) -> None:
    result = boot(guest, *args)
    assert result.returncode == 2 and result.stderr.startswith("hyper-boot: ")
