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
import functools
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Callable, Optional

from _common import REPO, Sample, Tracker, console_path, load_average, median, remove, run_baseline, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import GuestImage, load_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, render_domain_xml

PREFIX = "bench-"
BOOT_TIMEOUT = 180.0
EXEC_TIMEOUT = 60.0


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


def field_median(samples: list[Sample], field: str) -> float:
    return median(getattr(s, field) for s in samples)


def print_table(rows: list[tuple[str, int, list[Sample], list[Sample]]], runs: int) -> None:
    header = (
        f"{'image':<14} {'initrd':>8} | {'create ours':>11} {'base':>6} | {'ping ours':>9} {'base':>6} {'ratio':>5} | {'exec ours':>9} {'base':>6} {'ratio':>5}"
    )
    load = load_average()
    print(f"\nmedians of {runs} runs, seconds from createXML; ratio = ours / baseline (lower is better); load average now {load}")
    print(header)
    print("-" * len(header))
    for name, size, ours, base in rows:
        cells = [f"{name:<14} {size / 1e6:>7.1f}M"]
        cells.append(f"{field_median(ours, 'create'):>11.3f} {field_median(base, 'create'):>6.3f}")
        for field in ("ping", "exec"):
            o, b = field_median(ours, field), field_median(base, field)
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

    sigterm_interrupts()
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
