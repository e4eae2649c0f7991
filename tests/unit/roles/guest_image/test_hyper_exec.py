# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's exec helper (roles/guest_image/files/hyper-exec.c) built and run on the host.

``serve`` gets its listening socket on fd 3 as ``launch`` gives it (without crun: the namespaces are
crun's business, checked by the hyper_exec integration target); ``run`` is the host's client. The
binary is built with its container directory under tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

SOURCE = Path(__file__).resolve().parents[4] / "roles" / "guest_image" / "files" / "hyper-exec.c"
GCC = shutil.which("gcc")
TOKEN = "0123456789abcdef"
INLINE_MARKER = b"@@hyper-inline-output@@"

pytestmark = pytest.mark.skipif(GCC is None, reason="needs gcc on the host")


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hyper-exec")
    containers = root / "containers"
    containers.mkdir()
    out = root / "hyper-exec"
    assert GCC is not None
    subprocess.run([GCC, "-O2", "-Wall", "-Wextra", "-Werror", f'-DCONTAINERS_DIR="{containers}"', "-o", str(out), str(SOURCE)], check=True)
    return out, containers


@pytest.fixture
def server(binary: tuple[Path, Path]) -> Iterator[subprocess.Popen[bytes]]:
    exe, containers = binary
    (containers / "web").mkdir(exist_ok=True)
    path = containers / "web" / "exec.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)
        image = os.open(exe, os.O_RDONLY)

        def fds() -> None:
            os.dup2(listener.fileno(), 3)
            os.dup2(image, 4)

        proc = subprocess.Popen([str(exe), "serve"], preexec_fn=fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL)
        os.close(image)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        path.unlink()


def run(
    binary: tuple[Path, Path], *args: str, files: tuple[str, str, str] = ("", "", ""), stdin: bytes = b"", timeout: float = 20
) -> subprocess.CompletedProcess[bytes]:
    exe, _containers = binary
    return subprocess.run([str(exe), "run", TOKEN, "web", *files, *args], input=stdin, capture_output=True, timeout=timeout, check=False)


@pytest.mark.usefixtures("server")
@pytest.mark.parametrize(
    ("args", "rc", "stdout", "stderr"),
    [
        (["--", "sh", "-c", "echo out; echo err >&2"], 0, b"out\n", b"err\n"),
        (["--", "sh", "-c", "exit 7"], 7, b"", b""),
        (["--", "sh", "-c", "exit 125"], 125, b"", b""),
        (["-e", "A=1", "-e", "B=x y", "--", "sh", "-c", 'echo "$A/$B"'], 0, b"1/x y\n", b""),
        (["-e", "PATH=/nowhere", "--", "sh", "-c", "echo no"], 255, b"", b"executable file `sh` not found in $PATH: No such file or directory\n"),
        (["-C", "/tmp", "--", "pwd"], 0, b"/tmp\n", b""),
        (["-C", "/no/such/dir", "--", "pwd"], 255, b"", b"chdir `/no/such/dir`: No such file or directory\n"),
        (["--", "no-such-program"], 255, b"", b"executable file `no-such-program` not found in $PATH: No such file or directory\n"),
        (["--", "/no/such/program"], 255, b"", b"executable file `/no/such/program` not found in $PATH: No such file or directory\n"),
        (["--", "sh", "-c", 'read -r _ _ _ _ pgrp sid _ </proc/self/stat; [ "$$" = "$pgrp" ] && [ "$$" = "$sid" ] && echo leader'], 0, b"leader\n", b""),
        (["--", "sh", "-c", "ls /proc/self/fd"], 0, b"0\n1\n2\n3\n", b""),
    ],
)
def test_commands(binary: tuple[Path, Path], args: list[str], rc: int, stdout: bytes, stderr: bytes) -> None:
    done = run(binary, *args)
    assert (done.returncode, done.stdout, done.stderr) == (rc, stdout, stderr)


@pytest.mark.usefixtures("server")
def test_stdin_passes_through(binary: tuple[Path, Path]) -> None:
    data = os.urandom(300_000)
    assert run(binary, "--", "cat", stdin=data).stdout == data


@pytest.mark.usefixtures("server")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV, signal.SIGUSR1])
def test_dies_by_the_same_signal(binary: tuple[Path, Path], sig: signal.Signals) -> None:
    assert run(binary, "--", "sh", "-c", f"kill -{sig.value} $$").returncode == -sig.value


@pytest.mark.usefixtures("server")
def test_user_drops_groups_and_capabilities(binary: tuple[Path, Path]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    done = run(binary, "-u", "1000:1001", "--", "sh", "-c", "id -u; id -g; id -G; grep -E '^Cap(Prm|Eff|Amb):' /proc/self/status")
    assert done.stdout.decode().split() == ["1000", "1001", "1001", "CapPrm:", "0000000000000000", "CapEff:", "0000000000000000", "CapAmb:", "0000000000000000"]


@pytest.mark.usefixtures("server")
@pytest.mark.parametrize(("size", "inline"), [(10, True), (1024 * 1024, True), (1024 * 1024 + 1, False)])
def test_output_files_inline_or_kept(binary: tuple[Path, Path], tmp_path: Path, size: int, inline: bool) -> None:
    out, err = tmp_path / "o", tmp_path / "e"
    done = run(binary, "--", "head", "-c", str(size), "/dev/zero", files=("", str(out), str(err)))
    assert done.returncode == 0
    if inline:
        assert (done.stdout, done.stderr) == (b"\0" * size, INLINE_MARKER)
        assert not out.exists() and not err.exists()
    else:
        assert (done.stdout, done.stderr) == (b"", b"")
        assert out.read_bytes() == b"\0" * size and err.read_bytes() == b""


@pytest.mark.usefixtures("server")
def test_stdin_file(binary: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"from a file")
    assert run(binary, "--", "cat", files=(str(tmp_path / "in"), "", "")).stdout == b"from a file"


def test_unavailable_without_a_server(binary: tuple[Path, Path]) -> None:
    done = run(binary, "--", "true")
    assert done.returncode == 125
    assert done.stderr.startswith(f"hyper-exec: {TOKEN} unavailable: ".encode()) and done.stderr.count(b"\n") == 1


def test_unavailable_when_the_server_is_dead(binary: tuple[Path, Path], server: subprocess.Popen[bytes]) -> None:
    server.kill()
    server.wait()
    done = run(binary, "--", "true")
    assert done.returncode == 125 and b"unavailable: " in done.stderr and b"Connection refused" in done.stderr


def test_lost_when_the_server_dies_during_the_command(binary: tuple[Path, Path], server: subprocess.Popen[bytes]) -> None:
    exe, _containers = binary
    client = subprocess.Popen([str(exe), "run", TOKEN, "web", "", "", "", "--", "sleep", "5"], stderr=subprocess.PIPE)
    time.sleep(0.5)
    server.kill()
    server.wait()
    _stdout, stderr = client.communicate(timeout=20)
    assert client.returncode == 125 and stderr.startswith(f"hyper-exec: {TOKEN} lost: ".encode())


@pytest.mark.usefixtures("server")
def test_a_killed_client_takes_the_process_group_with_it(binary: tuple[Path, Path], tmp_path: Path) -> None:
    exe, _containers = binary
    marker = tmp_path / "pids"
    client = subprocess.Popen([str(exe), "run", TOKEN, "web", "", "", "", "--", "sh", "-c", f"sleep 60 & echo $$ $! >{marker}; wait"])
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in marker.read_text().split()]
    client.kill()
    client.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    "args",
    [
        ["run", TOKEN, "../x", "", "", "", "--", "true"],
        ["run", TOKEN, "web", "", "", "", "-e", "=x", "--", "true"],
        ["run", TOKEN, "web", "", "", "", "-C", "relative", "--", "true"],
        ["run", TOKEN, "web", "", "", "", "-u", "root", "--", "true"],
        ["run", TOKEN, "web", "", "", "", "--"],
        ["launch", "../x"],
        ["serve"],
        ["nothing"],
    ],
)
def test_bad_arguments(binary: tuple[Path, Path], args: list[str]) -> None:
    exe, _containers = binary
    done = subprocess.run([str(exe), *args], capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=20)
    assert done.returncode == 2 and done.stderr.startswith(b"hyper-exec")


# -- mcli: a line to a unix socket of the container's own process (haproxy's master CLI) ----------

MCLI_SERVER = """
import os, socket, sys
path, reply, pid_file = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
with socket.socket(socket.AF_UNIX) as listener:
    listener.bind(path)
    listener.listen(4)
    with open(pid_file, "w") as f:
        f.write(f"{os.getpid()}\\n")
    while True:
        conn, _ = listener.accept()
        data = b""
        while not data.endswith(b"\\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        conn.sendall(data + reply)
        conn.close()
"""


@pytest.fixture
def master(binary: tuple[Path, Path]) -> Iterator[tuple[Path, Path]]:
    """A peer on rootfs/run/m.sock of container "web"; its pid in the container's pid file (as the supervisor writes it)."""
    _exe, containers = binary
    rootfs = containers / "web" / "rootfs"
    (rootfs / "run").mkdir(parents=True, exist_ok=True)
    sock, pid_file = rootfs / "run" / "m.sock", containers / "web" / "pid"
    sock.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", MCLI_SERVER, str(sock), "answer\n", str(pid_file)])
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield sock, pid_file
    finally:
        proc.kill()
        proc.wait()
        sock.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


def mcli(binary: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess[bytes]:
    exe, _containers = binary
    return subprocess.run([str(exe), "mcli", *args], capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=20)


def test_mcli_sends_a_line_and_copies_the_answer(binary: tuple[Path, Path], master: tuple[Path, Path]) -> None:
    done = mcli(binary, "web", "/run/m.sock", "show proc")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"show proc\nanswer\n", b"")


def test_mcli_refuses_a_peer_that_is_not_the_containers_process(binary: tuple[Path, Path], master: tuple[Path, Path]) -> None:
    _sock, pid_file = master
    pid_file.write_text("2\n")  # another process than the one listening
    done = mcli(binary, "web", "/run/m.sock", "reload")
    assert done.returncode == 7 and b"nothing sent" in done.stderr and done.stdout == b""


@pytest.mark.parametrize(
    ("args", "rc"),
    [
        (["web", "/run/none.sock", "show proc"], 6),  # no such socket: nothing sent
        (["web", "/run/m.sock", "two\nlines"], 2),
        (["web", "/run/m.sock", ""], 2),
        (["web", "run/m.sock", "x"], 2),
        (["../web", "/run/m.sock", "x"], 2),
        (["web", "/run/m.sock", "x" * 5000], 2),
    ],
)
def test_mcli_bad_or_missing(binary: tuple[Path, Path], master: tuple[Path, Path], args: list[str], rc: int) -> None:
    assert mcli(binary, *args).returncode == rc


def test_mcli_without_a_container_process(binary: tuple[Path, Path]) -> None:
    done = mcli(binary, "nobody", "/run/m.sock", "show proc")
    assert done.returncode == 6 and b"has no process" in done.stderr


# -- log: a container's log writer -------------------------------------------------------------------

STAMP = re.compile(rb"^[0-9]{10,12}\.[0-9]{6} ")


def log(binary: tuple[Path, Path], path: Path, limit: int, data: bytes) -> subprocess.CompletedProcess[bytes]:
    exe, _containers = binary
    return subprocess.run([str(exe), "log", str(path), str(limit)], input=data, capture_output=True, timeout=60, check=False)


def test_log_stamps_every_line_and_ends_the_last(binary: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "log"
    before = time.time()
    assert log(binary, path, 1 << 20, b"one\ntwo\n\nno newline").returncode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    assert [STAMP.sub(b"", line) for line in lines[:-1]] == [b"one", b"two", b"", b"no newline"]
    stamp = float(lines[0].split(b" ")[0])
    assert before - 1 <= stamp <= time.time() + 1
    assert oct(path.stat().st_mode & 0o777) == "0o640"


def test_log_appends_to_what_is_there(binary: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"old line\n")
    log(binary, path, 1 << 20, b"new line\n")
    assert path.read_bytes().startswith(b"old line\n") and path.read_bytes().endswith(b" new line\n")


def test_log_rotates_between_lines_and_keeps_one_old_file(binary: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "log"
    limit = 100_000
    data = b"".join(b"%07d %s\n" % (i, b"x" * 90) for i in range(10_000))  # ~1 MB: rotated ten times
    assert log(binary, path, limit, data).returncode == 0
    old = tmp_path / "log.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "log.1"]
    assert path.stat().st_size <= limit + 200 and limit <= old.stat().st_size <= limit + 200
    for item in (old, path):
        lines = item.read_bytes().splitlines()
        assert all(STAMP.match(line) and len(line) == 18 + 98 for line in lines)
    # The newest lines are the last ones written, in order, with none missing across the two files.
    numbers = [int(STAMP.sub(b"", line).split(b" ")[0]) for item in (old, path) for line in item.read_bytes().splitlines()]
    assert numbers == list(range(numbers[0], 10_000))


def test_log_cuts_a_very_long_line(binary: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "log"
    log(binary, path, 1 << 20, b"y" * 40_000 + b"\n")
    lines = path.read_bytes().splitlines()
    assert [len(STAMP.sub(b"", line)) for line in lines] == [16384, 16384, 40_000 - 2 * 16384]


@pytest.mark.parametrize("args", [["log"], ["log", "x"], ["log", "x", "0"], ["log", "x", "12k"], ["log", "", "10"], ["log", "x", "10", "y"]])
def test_log_bad_arguments(binary: tuple[Path, Path], args: list[str], tmp_path: Path) -> None:
    exe, _containers = binary
    done = subprocess.run([str(exe), *args], capture_output=True, check=False, stdin=subprocess.DEVNULL, cwd=tmp_path, timeout=20)
    assert done.returncode == 2 and done.stderr.startswith(b"hyper-exec")


def test_log_refuses_a_planted_link(binary: tuple[Path, Path], tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "log").symlink_to(target)
    done = log(binary, tmp_path / "log", 1 << 20, b"line\n")
    assert done.returncode == 1 and not target.exists()
