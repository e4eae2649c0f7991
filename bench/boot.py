# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Boot benchmark: create → first guest-ping and create → guest-exec done, ours against a raw baseline.

For each guest image, runs N boots through the hyper library (render_domain_xml, LibvirtClient,
GuestAgent) and N through a raw baseline in the same run, interleaved: plain ``libvirt.open``,
a hand-written minimal domain XML string, ``createXML`` and a ``qemuAgentCommand`` loop with
fixed sleeps, on the same kernel and initrd. Prints medians and the ratio ours/baseline.

    bench/boot.py --images default                 # images already under <root>/images/
    bench/boot.py --build gzip,lz4,zstd,none       # build bench-<comp> with the guest_image role first

Every domain it starts is named bench-* and destroyed, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Optional
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, ".build", "collections"))

from ansible_collections.hyper.pods.plugins.module_utils._hyper.agent import GuestAgent, LibvirtAgentTransport  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.domain_xml import DomainSpec, render_domain_xml  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host import resolve_accelerator  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.image import GuestImage, load_image  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.libvirt_client import LibvirtClient, import_libvirt  # noqa: E402

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


def console_path(root: str, name: str) -> str:
    return os.path.join(root, "run", f"{name}.console.log")


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def run_ours(tracker: Tracker, root: str, image: GuestImage, accelerator: str, memory: int, command: list[str]) -> Sample:
    name = PREFIX + secrets.token_hex(4)
    console = console_path(root, name)
    spec = DomainSpec(
        name=name,
        title=f"bench of image {image.name}",
        memory_mib=memory,
        vcpus=1,
        accelerator=accelerator,
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.kernel_args,
        console_log=console,
        agent_channel=image.agent_channel,
    )
    xml = render_domain_xml(spec)
    tracker.names.add(name)
    try:
        start = time.monotonic()
        dom = tracker.client.create_transient(xml)
        created = time.monotonic() - start
        agent = GuestAgent(LibvirtAgentTransport(dom, name))
        agent.wait_ready(BOOT_TIMEOUT, is_alive=lambda: tracker.client.is_active(dom))
        pinged = time.monotonic() - start
        result = agent.exec(command, timeout=EXEC_TIMEOUT)
        executed = time.monotonic() - start
        if result.rc != 0:
            raise RuntimeError(f"{name}: {command} exited {result.rc}: {result.stderr!r}")
        return Sample(created, pinged, executed)
    finally:
        tracker.cleanup()
        remove(console)


def baseline_xml(name: str, image: GuestImage, memory: int, console: str) -> str:
    # Hand-written, minimal, libvirt defaults for everything else (as a first attempt would look).
    return f"""<domain type='qemu'>
  <name>{xml_escape(name)}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{xml_escape(image.kernel)}</kernel>
    <initrd>{xml_escape(image.initrd)}</initrd>
    <cmdline>{xml_escape(image.kernel_args)}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <serial type='file'><source path={quoteattr(console)}/></serial>
    <channel type='unix'><target type='virtio' name={quoteattr(image.agent_channel)}/></channel>
  </devices>
</domain>
"""


def run_baseline(tracker: Tracker, root: str, image: GuestImage, memory: int, command: list[str]) -> Sample:
    libvirt, libvirt_qemu = import_libvirt()
    conn = libvirt.open(tracker.client.uri)
    name = PREFIX + "raw-" + secrets.token_hex(4)
    console = console_path(root, name)

    def agent(request: dict[str, Any]) -> Any:
        return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), BASELINE_CALL_TIMEOUT, 0))["return"]

    tracker.names.add(name)
    try:
        start = time.monotonic()
        dom = conn.createXML(baseline_xml(name, image, memory, console), 0)
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
        return Sample(created, pinged, executed)
    finally:
        tracker.cleanup()
        remove(console)
        conn.close()


def build_images(compressions: list[str], root: str) -> list[str]:
    names = []
    for comp in compressions:
        name = f"bench-{comp}"
        print(f"building {name} with the guest_image role ...", flush=True)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"))
        subprocess.run(
            [
                os.path.join(os.path.dirname(sys.executable), "ansible"),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                "-e",
                f"guest_image_name={name}",
                "-e",
                f"guest_image_compression={comp}",
                "-e",
                f"guest_image_root={root}",
                "localhost",
                "-m",
                "ansible.builtin.include_role",
                "-a",
                "name=hyper.pods.guest_image",
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        names.append(name)
    return names


def median(samples: list[Sample], field: str) -> float:
    return float(statistics.median(getattr(s, field) for s in samples))


def print_table(rows: list[tuple[str, int, list[Sample], list[Sample]]], runs: int) -> None:
    header = (
        f"{'image':<14} {'initrd':>8} | {'create ours':>11} {'base':>6} | {'ping ours':>9} {'base':>6} {'ratio':>5} | {'exec ours':>9} {'base':>6} {'ratio':>5}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nmedians of {runs} runs, seconds from createXML; ratio = ours / baseline (lower is better); load average now {load}")
    print(header)
    print("-" * len(header))
    for name, size, ours, base in rows:
        cells = [f"{name:<14} {size / 1e6:>7.1f}M"]
        cells.append(f"{median(ours, 'create'):>11.3f} {median(base, 'create'):>6.3f}")
        for field in ("ping", "exec"):
            o, b = median(ours, field), median(base, field)
            cells.append(f"{o:>9.3f} {b:>6.3f} {o / b:>5.2f}")
        print(" | ".join(cells))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="", help="comma-separated image names under <root>/images/")
    parser.add_argument("--build", default="", help="comma-separated compressions to build as bench-<comp> first (gzip,lz4,zstd,none)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "kvm", "tcg"])
    parser.add_argument("--memory", type=int, default=256)
    parser.add_argument("--command", default="true", help="command run through guest-exec (split on spaces)")
    parser.add_argument("--json", help="also write the samples to this file")
    args = parser.parse_args(argv)

    images = [n for n in args.images.split(",") if n]
    if args.build:
        images += build_images([c for c in args.build.split(",") if c], args.root)
    if not images:
        parser.error("give --images and/or --build")
    accelerator = resolve_accelerator(args.accelerator, args.root)
    if accelerator != "tcg":
        parser.error("the baseline XML is written for TCG (type='qemu'); run with --accelerator tcg")
    command = args.command.split()
    os.makedirs(os.path.join(args.root, "run"), exist_ok=True)

    def interrupted(signum: int, _frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    rows = []
    with LibvirtClient.open(args.uri) as client:
        tracker = Tracker(client)
        try:
            for name in images:
                image = load_image(args.root, name)
                ours: list[Sample] = []
                base: list[Sample] = []
                runners: list[tuple[list[Sample], Callable[[], Sample]]] = [
                    (ours, functools.partial(run_ours, tracker, args.root, image, accelerator, args.memory, command)),
                    (base, functools.partial(run_baseline, tracker, args.root, image, args.memory, command)),
                ]
                for run in range(args.runs):
                    # Alternate who goes first so that drift in host load hits both sides alike.
                    for samples, runner in runners if run % 2 == 0 else runners[::-1]:
                        samples.append(runner())
                    print(
                        f"{name} run {run + 1}/{args.runs}: ours ping {ours[-1].ping:.2f}s exec {ours[-1].exec:.2f}s, "
                        f"baseline ping {base[-1].ping:.2f}s exec {base[-1].exec:.2f}s",
                        flush=True,
                    )
                rows.append((name, os.path.getsize(image.initrd), ours, base))
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            tracker.cleanup()
    print_table(rows, args.runs)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({n: {"ours": [vars(s) for s in o], "baseline": [vars(s) for s in b], "initrd_bytes": sz} for n, sz, o, b in rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
