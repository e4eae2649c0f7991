# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Boot benchmark: create → first guest-ping and create → guest-exec done, ours against a raw baseline.

For each guest image, runs N boots through the hyper library (render_domain_xml, LibvirtClient,
GuestAgent) and N through a raw baseline in the same run, interleaved: plain ``libvirt.open``,
a hand-written minimal domain XML string, ``createXML`` and a ``qemuAgentCommand`` loop with
fixed sleeps, on the same kernel and initrd. Prints medians and the ratio ours/baseline.

    bench/boot.py --images default                 # images already under <root>/images/
    bench/boot.py --build gzip,lz4,zstd,none       # build bench-<comp> with the guest_image role first
    bench/boot.py --images default,podkernel       # the package kernel against the built pod kernel
    bench/boot.py --images podkernel --args-variants 'reboot=k,i8042.noaux'   # each extra boot argument on its own

With several images, a last table compares each with the first one (kernel init, create →
ping, create → exec, and the ratios). ``--args-variants`` boots each image once more per
comma-separated argument, appended to its manifest's kernel args, as its own row.

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
from dataclasses import replace
from typing import Callable, Optional

from _common import REPO, Sample, Tracker, console_path, init_uptime, load_average, median, remove, run_baseline, sigterm_interrupts

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
        return Sample(created, pinged, executed, init_uptime(console))
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


def init_median(samples: list[Sample]) -> float:
    values = [s.init for s in samples if s.init is not None]
    return median(values) if values else float("nan")


def print_images(rows: list[tuple[str, int, list[Sample], list[Sample]]]) -> None:
    """Each image against the first one (give the package kernel's image first): medians of ours and their ratio."""
    first = rows[0]
    print(f"\nimages against {first[0]} (medians of ours; ratio = image / {first[0]}, lower is better)")
    header = f"{'image':<14} | {'kernel init':>11} {'ratio':>5} | {'create → ping':>13} {'ratio':>5} | {'create → exec':>13} {'ratio':>5}"
    print(header)
    print("-" * len(header))
    for name, _size, ours, _base in rows:
        cells = [f"{name:<14}"]
        init, init0 = init_median(ours), init_median(first[2])
        cells.append(f"{init:>11.3f} {init / init0:>5.2f}")
        for field in ("ping", "exec"):
            value, value0 = field_median(ours, field), field_median(first[2], field)
            cells.append(f"{value:>13.3f} {value / value0:>5.2f}")
        print(" | ".join(cells))


def print_table(rows: list[tuple[str, int, list[Sample], list[Sample]]], runs: int) -> None:
    header = (
        f"{'image':<14} {'initrd':>8} | {'create ours':>11} {'base':>6} | {'ping ours':>9} {'base':>6} {'ratio':>5} | {'exec ours':>9} {'base':>6} {'ratio':>5}"
        f" | {'init':>5}"
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
        cells.append(f"{init_median(ours):>5.3f}")
        print(" | ".join(cells))
    print("init: guest uptime at the init's first marker (the kernel's own init, uptime 0 → /init), median of ours")
    if len(rows) > 1:
        print_images(rows)


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
    parser.add_argument("--args-variants", default="", help="comma-separated kernel arguments, each measured as its own row appended to every image's")
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
    rows: list[tuple[str, int, list[Sample], list[Sample]]] = []
    with LibvirtClient.open(args.uri) as client:
        tracker = Tracker(client)
        try:
            variants = [(name, load_image(args.root, name)) for name in images]
            for arg in (a for a in args.args_variants.split(",") if a):
                variants += [(f"{name}+{arg}", replace(image, kernel_args=f"{image.kernel_args} {arg}")) for name, image in variants[: len(images)]]
            samples: dict[str, tuple[list[Sample], list[Sample]]] = {name: ([], []) for name, _image in variants}  # (ours, baseline)
            for run in range(args.runs):
                # Images interleaved within each run, and who goes first alternating, so that drift
                # in host load hits every image and both sides alike.
                for name, image in variants:
                    ours, base = samples[name]
                    runners: list[tuple[list[Sample], Callable[[], Sample]]] = [
                        (ours, functools.partial(run_ours, tracker, args.root, image, accelerator, args.memory, command)),
                        (base, functools.partial(run_baseline, tracker, args.root, image, args.memory, command)),
                    ]
                    for target, runner in runners if run % 2 == 0 else runners[::-1]:
                        target.append(runner())
                    print(
                        f"{name} run {run + 1}/{args.runs}: ours ping {ours[-1].ping:.2f}s exec {ours[-1].exec:.2f}s init {ours[-1].init}, "
                        f"baseline ping {base[-1].ping:.2f}s exec {base[-1].exec:.2f}s",
                        flush=True,
                    )
            rows = [(name, os.path.getsize(image.initrd), *samples[name]) for name, image in variants]
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
