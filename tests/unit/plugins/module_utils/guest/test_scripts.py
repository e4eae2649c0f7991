# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest-side scripts the host sends (guest/scripts/), run under the host's busybox sh as the guest runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import exec_wrapper, net_up, push, vips

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox on the host")


def sh(script: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``sh -c SCRIPT sh ARGS...``, as the host's argv lists run them in the guest."""
    assert BUSYBOX is not None
    return subprocess.run([BUSYBOX, "sh", "-c", script, "sh", *args], input=stdin, capture_output=True, timeout=30, check=False)


# -- exec wrapper -----------------------------------------------------------------------------------


def test_exec_wrapper_hands_small_output_back_inline(tmp_path: Path) -> None:
    pid, out, err = tmp_path / "pid", tmp_path / "out", tmp_path / "err"
    pid.write_text("123")
    result = sh(exec_wrapper.SCRIPT, str(pid), "", str(out), str(err), "sh", "-c", "echo hello; echo oops >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == b"hello\n"
    assert result.stderr == b"oops\n" + exec_wrapper.INLINE_MARKER.encode()
    assert not pid.exists() and not out.exists() and not err.exists()  # nothing left to read or remove


def test_exec_wrapper_keeps_large_output_in_files(tmp_path: Path) -> None:
    pid, out, err = tmp_path / "pid", tmp_path / "out", tmp_path / "err"
    size = exec_wrapper.INLINE_LIMIT + 1
    result = sh(exec_wrapper.SCRIPT, str(pid), "", str(out), str(err), "head", "-c", str(size), "/dev/zero")
    assert result.returncode == 0 and result.stdout == b"" and exec_wrapper.INLINE_MARKER.encode() not in result.stderr
    assert out.stat().st_size == size and err.read_bytes() == b""


def test_exec_wrapper_reads_stdin_from_its_file_and_argv_stays_data(tmp_path: Path) -> None:
    stdin = tmp_path / "in"
    stdin.write_bytes(b"from the file\n")
    result = sh(exec_wrapper.SCRIPT, str(tmp_path / "pid"), str(stdin), "", "", "sh", "-c", 'cat; printf "%s\\n" "$1"', "x", "$(touch injected); `id`")
    assert result.returncode == 0
    assert result.stdout == b"from the file\n$(touch injected); `id`\n"
    assert not (Path.cwd() / "injected").exists()


# -- data channel --------------------------------------------------------------------------------------


def _push(tmp_path: Path, data: bytes, sent_trailer: bytes, trailer: str, mode: str = "") -> tuple[subprocess.CompletedProcess[bytes], Path]:
    port = tmp_path / "port"  # a regular file stands in for the virtio-serial device
    port.write_bytes(data + sent_trailer)
    target = tmp_path / "target"
    tmp = tmp_path / "target.tmp"
    result = sh(push.SCRIPT, str(port), str(tmp), str(len(data) + len(sent_trailer)), trailer, str(len(data)), mode, str(target))
    return result, target


def test_push_writes_the_data_without_its_trailer(tmp_path: Path) -> None:
    trailer = "t" * 32
    result, target = _push(tmp_path, b"payload\x00\xff" * 1000, trailer.encode(), trailer, "600")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"payload\x00\xff" * 1000
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "target.tmp").exists()


def test_push_refuses_data_without_its_trailer(tmp_path: Path) -> None:
    result, target = _push(tmp_path, b"payload", b"s" * 32, "t" * 32)
    assert result.returncode == 3
    assert b"did not end with its trailer" in result.stderr
    assert not target.exists() and not (tmp_path / "target.tmp").exists()


# -- disks, interfaces, service addresses -------------------------------------------------------


def test_net_up_names_a_mac_it_cannot_find(tmp_path: Path) -> None:
    script = tmp_path / "up.sh"
    script.write_text(net_up.SCRIPT)
    assert BUSYBOX is not None
    result = subprocess.run([BUSYBOX, "sh", str(script), "02:00:00:00:00:99", "dhcp", "-", "1"], capture_output=True, timeout=30, check=False)
    assert result.returncode == 1
    assert b"no interface with MAC 02:00:00:00:00:99" in result.stderr


UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(os.geteuid() != 0 or UNSHARE is None or shutil.which("ip") is None, reason="needs root, unshare and ip for a network namespace")
def test_vips_add_and_remove_in_a_network_namespace() -> None:
    """In a throwaway network namespace: add twice (idempotent), remove twice (gone is fine), never the host's lo."""
    assert BUSYBOX is not None and UNSHARE is not None
    steps = (
        f'{BUSYBOX} sh -c "$1" sh 10.96.0.10/32 fd00::10/128 && {BUSYBOX} sh -c "$1" sh 10.96.0.10/32 && ip -o addr show dev lo && echo ---'
        f' && {BUSYBOX} sh -c "$2" sh 10.96.0.10/32 fd00::10/128 && {BUSYBOX} sh -c "$2" sh 10.96.0.10/32 && ip -o addr show dev lo'
    )
    result = subprocess.run([UNSHARE, "-n", "sh", "-c", steps, "sh", vips.ADD, vips.REMOVE], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    added, removed = result.stdout.split("---")
    assert "10.96.0.10/32" in added and "fd00::10/128" in added
    assert "10.96.0.10" not in removed and "fd00::10" not in removed


def test_push_waits_out_an_end_of_file_before_the_data(tmp_path: Path) -> None:
    """A virtio-serial port reads end-of-file until the host end is connected: the reader keeps the port and waits."""
    port = tmp_path / "port"
    port.write_bytes(b"")  # nothing yet: end-of-file at once, as an unconnected port
    data, trailer = b"late data" * 100, "t" * 32
    target, tmp = tmp_path / "target", tmp_path / "target.tmp"
    assert BUSYBOX is not None
    reader = subprocess.Popen(
        [BUSYBOX, "sh", "-c", push.SCRIPT, "sh", str(port), str(tmp), str(len(data) + 32), trailer, str(len(data)), "", str(target), "", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)  # the reader has seen end-of-file several times by now
        with open(port, "ab") as handle:  # the host connects and sends
            handle.write(data + trailer.encode())
        _out, err = reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    assert target.read_bytes() == data


def test_push_gives_up_when_no_data_comes(tmp_path: Path) -> None:
    port = tmp_path / "port"
    port.write_bytes(b"")
    result = sh(push.SCRIPT, str(port), str(tmp_path / "t.tmp"), "100", "t" * 32, "68", "", str(tmp_path / "t"), "", "2")
    assert result.returncode == 3
    assert b"no data on the data channel" in result.stderr
    assert not (tmp_path / "t.tmp").exists()


@pytest.mark.skipif(os.geteuid() != 0 or UNSHARE is None, reason="needs root and unshare for a mount namespace")
def test_push_into_a_container_resolves_links_inside_it(tmp_path: Path) -> None:
    """With a root, the reader reaches its target through the nosymfollow view: a planted link stays in the container."""
    assert BUSYBOX is not None and UNSHARE is not None
    root, outside = tmp_path / "rootfs", tmp_path / "usr-sbin"
    outside.mkdir()
    (outside / "hyper-container").write_text("the guest's own")
    own = Path(str(root) + str(outside))
    own.mkdir(parents=True)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp" / "evil").symlink_to(outside)  # absolute: the guest's dir from outside, the container's own inside
    data, trailer = b"payload" * 50, "t" * 32
    port = tmp_path / "port"
    port.write_bytes(data + trailer.encode())
    script = push.SCRIPT.replace("/run/hyper/view", str(tmp_path / "view"))
    argv = [str(port), "tmp/evil/.hyper-container.hyper-1", str(len(data) + 32), trailer, str(len(data)), "", "tmp/evil/hyper-container", str(root)]
    result = subprocess.run([UNSHARE, "-m", "--propagation", "private", BUSYBOX, "sh", "-c", script, "sh", *argv], capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert (own / "hyper-container").read_bytes() == data
    assert (outside / "hyper-container").read_text() == "the guest's own"
    assert sorted(os.listdir(outside)) == ["hyper-container"]
