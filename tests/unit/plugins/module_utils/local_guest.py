# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A guest whose file system is a local directory: qemu-ga's exec and file calls done for real under busybox.

Every guest path under ``/run/hyper`` is mapped to ``<base>/run-hyper``, in argv values and in the
scripts the host sends alike, so the guest-side steps (guest/scripts/) run as written, with their
``unshare -m`` and nosymfollow view, against files the test can plant links in. Needs root (mount
namespaces), busybox and unshare; tests using it skip otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from typing import Any, Optional

import pytest

BUSYBOX = shutil.which("busybox")
CAN_RUN = os.geteuid() == 0 and BUSYBOX is not None
needs_local_guest = pytest.mark.skipif(not CAN_RUN, reason="needs root and busybox (mount namespaces for the guest-side steps)")


class LocalGuest:
    """An AgentTransport: ``guest-exec`` runs the argv locally (busybox applets), files live under ``base``."""

    name = "local-guest"

    def __init__(self, base: str) -> None:
        self.base = base
        self.run_dir = os.path.join(base, "run-hyper")
        os.makedirs(self.run_dir, exist_ok=True)
        # The guest's PATH: busybox applets only, as in the initrd.
        self.bin = os.path.join(base, "bin")
        os.makedirs(self.bin, exist_ok=True)
        assert BUSYBOX is not None
        for applet in subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split():
            if not os.path.lexists(os.path.join(self.bin, applet)):
                os.symlink(BUSYBOX, os.path.join(self.bin, applet))
        self.handles: dict[int, Any] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.execs: list[list[str]] = []
        self.opened: list[str] = []
        self._next = 1

    def path(self, guest_path: str) -> str:
        """The local file behind a guest path."""
        return guest_path.replace("/run/hyper", self.run_dir) if guest_path.startswith("/run/hyper") else os.path.join(self.base, guest_path.lstrip("/"))

    def _map(self, value: str) -> str:
        return value.replace("/run/hyper", self.run_dir)

    def send(self, json_text: str, timeout: int) -> str:
        request = json.loads(json_text)
        name, args = request["execute"], request.get("arguments", {})
        return json.dumps({"return": getattr(self, "_" + name.replace("-", "_"))(args)})

    def _guest_exec(self, args: dict[str, Any]) -> dict[str, Any]:
        argv = [args["path"], *args.get("arg", [])]
        self.execs.append(argv)
        local = [self._map(a) for a in argv]
        assert BUSYBOX is not None
        stdin = base64.b64decode(args["input-data"]) if "input-data" in args else b""
        env = {"PATH": self.bin}
        done = subprocess.run([os.path.join(self.bin, local[0]), *local[1:]], input=stdin, capture_output=True, timeout=60, check=False, env=env)
        pid = self._next = self._next + 1
        self.results[pid] = {
            "exited": True,
            "exitcode": done.returncode,
            "out-data": base64.b64encode(done.stdout).decode(),
            "err-data": base64.b64encode(done.stderr).decode(),
        }
        return {"pid": pid}

    def _guest_exec_status(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.results[args["pid"]]

    def _guest_file_open(self, args: dict[str, Any]) -> int:
        # qemu-ga follows links: so does this fake (open(2) without O_NOFOLLOW).
        self.opened.append(args["path"])
        mode = {"r": "rb", "w": "wb", "a": "ab"}[args.get("mode", "r")]
        handle = self._next = self._next + 1
        self.handles[handle] = open(self.path(args["path"]), mode)  # noqa: SIM115
        return handle

    def _guest_file_write(self, args: dict[str, Any]) -> dict[str, Any]:
        data = base64.b64decode(args["buf-b64"])
        self.handles[args["handle"]].write(data)
        return {"count": len(data), "eof": False}

    def _guest_file_read(self, args: dict[str, Any]) -> dict[str, Any]:
        data = self.handles[args["handle"]].read(args.get("count", 4096))
        return {"count": len(data), "buf-b64": base64.b64encode(data).decode(), "eof": not data}

    def _guest_file_close(self, args: dict[str, Any]) -> dict[str, Any]:
        self.handles.pop(args["handle"]).close()
        return {}

    def _guest_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {}


def container_root(guest: LocalGuest, container: str = "httpd") -> str:
    """The local directory behind the container's root file system in the guest (created)."""
    root = guest.path(f"/run/hyper/containers/{container}/rootfs")
    os.makedirs(root, exist_ok=True)
    return root


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
