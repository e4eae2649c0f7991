# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the benchmarks share: the raw libvirt baseline, domain cleanup, medians, load average, signals.

The baseline is what a first hand-written attempt would look like: plain ``libvirt.open``, a
minimal domain XML string, ``createXML`` and a ``qemuAgentCommand`` loop with fixed sleeps, on
the kernel and initrd under test. Benchmarks run it interleaved with their own runs, in the same
process, and print ratios against it (DESIGN.md, "Tests that mean something").
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Iterable, Optional
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, ".build", "collections"))

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import GuestImage  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.domain import discard_vm  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import list_pods  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import running_pod  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient, import_libvirt  # noqa: E402

PREFIX = "bench-"
BOOT_TIMEOUT = 180.0
EXEC_TIMEOUT = 60.0
# The baseline polls like a typical hand-written loop: a fixed sleep between attempts.
BASELINE_SLEEP = 0.05
BASELINE_CALL_TIMEOUT = 5


@dataclass
class Sample:
    create: float  # createXML call (libvirt prepares and starts QEMU)
    ping: float  # create → first answered guest-ping
    exec: float  # create → guest-exec of the command finished
    init: Optional[float] = None  # kernel init: guest uptime at the init's first marker (uptime 0 → /init), from the console


def init_uptime(console: str) -> Optional[float]:
    """Guest uptime of the init's ``hyper-init: <uptime> stage1`` console marker: the kernel's own init (uptime 0 → /init)."""
    try:
        with open(console, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    match = re.search(r"hyper-init: (\d+\.\d+) stage1", text)
    return float(match.group(1)) if match else None


class Tracker:
    """Remembers every domain this run started, so that all of them are destroyed whatever happens."""

    def __init__(self, client: LibvirtClient) -> None:
        self.client = client
        self.names: set[str] = set()

    def cleanup(self) -> None:
        for name in sorted(self.names):
            try:
                self.client.destroy(self.client.lookup(name))
            except Exception as err:
                if "not found" not in str(err).lower():
                    print(f"warning: could not destroy {name}: {err}", file=sys.stderr)
        self.names.clear()


class BenchPod:
    """One pod of a benchmark: ``ensure_pod`` with ``spec``, removed by ``cleanup`` whatever happened.

    A removal that fails discards the VM instead, so a benchmark never leaves a domain behind.
    """

    def __init__(self, client: LibvirtClient, prefix: str, root: str, uri: str, spec: dict[str, Any]) -> None:
        self.client = client
        self.name = prefix + secrets.token_hex(4)
        self.root = root
        self.uri = uri
        self.spec = spec
        self.created = False

    def params(self, state: str) -> dict[str, Any]:
        params: dict[str, Any] = {"name": self.name, "state": state, "root": self.root, "uri": self.uri}
        if state == "absent":
            params["stop_timeout"] = 0
        else:
            params.update(self.spec)
        return params

    def start(self) -> tuple[Domain, str]:
        """Create and start the pod; its domain and VM id."""
        self.created = True
        ensure_pod(self.params("started"), False)
        found = running_pod(self.client, self.name)
        return found.dom, found.current.vm_id

    def cleanup(self) -> None:
        if not self.created:
            return
        try:
            ensure_pod(self.params("absent"), False)
        except HyperError as err:
            print(f"warning: removing {self.name}: {err}; discarding its VM", file=sys.stderr)
            with contextlib.suppress(HyperError):
                for found in list_pods(self.client):
                    if found.current.spec.get("name") == self.name:
                        discard_vm(self.client, found.dom, self.root, found.current.vm_id)
        self.created = False


def console_path(root: str, name: str) -> str:
    return os.path.join(root, "run", f"{name}.console.log")


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def baseline_xml(name: str, image: GuestImage, memory: int, console: str, cmdline: Optional[str] = None) -> str:
    # Hand-written, minimal, libvirt defaults for everything else (as a first attempt would look).
    return f"""<domain type='qemu'>
  <name>{xml_escape(name)}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{xml_escape(image.kernel)}</kernel>
    <initrd>{xml_escape(image.initrd)}</initrd>
    <cmdline>{xml_escape(image.kernel_args if cmdline is None else cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <serial type='file'><source path={quoteattr(console)}/></serial>
    <channel type='unix'><target type='virtio' name={quoteattr(image.agent_channel)}/></channel>
  </devices>
</domain>
"""


def run_baseline(tracker: Tracker, root: str, image: GuestImage, memory: int, command: list[str], cmdline: Optional[str] = None) -> Sample:
    """createXML → first guest-ping → guest-exec of ``command`` done, all with the raw binding."""
    libvirt, libvirt_qemu = import_libvirt()
    conn = libvirt.open(tracker.client.uri)
    name = PREFIX + "raw-" + secrets.token_hex(4)
    console = console_path(root, name)

    def agent(request: dict[str, Any]) -> Any:
        return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), BASELINE_CALL_TIMEOUT, 0))["return"]

    tracker.names.add(name)
    try:
        start = time.monotonic()
        dom = conn.createXML(baseline_xml(name, image, memory, console, cmdline), 0)
        created = time.monotonic() - start
        while True:
            try:
                agent({"execute": "guest-ping"})
                break
            except libvirt.libvirtError:
                if time.monotonic() - start > BOOT_TIMEOUT:
                    raise
                time.sleep(BASELINE_SLEEP)
        pinged = time.monotonic() - start
        arguments = {"path": command[0], "arg": command[1:], "capture-output": True}
        pid = agent({"execute": "guest-exec", "arguments": arguments})["pid"]
        while True:
            status = agent({"execute": "guest-exec-status", "arguments": {"pid": pid}})
            if status["exited"]:
                break
            time.sleep(BASELINE_SLEEP)
        executed = time.monotonic() - start
        if status.get("exitcode") != 0:
            raise RuntimeError(f"{name}: {command} exited {status.get('exitcode')}: {base64.b64decode(status.get('err-data', ''))!r}")
        return Sample(created, pinged, executed, init_uptime(console))
    finally:
        tracker.cleanup()
        remove(console)
        conn.close()


def median(values: Iterable[float]) -> float:
    return float(statistics.median(values))


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def sigterm_interrupts() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so that the cleanup in ``finally`` runs for it too."""

    def interrupted(signum: int, _frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
