# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What storage costs at pod start: the same pod plain, with a virtio-fs share (memfd memory), with a disk volume.

Each round starts three pods one after the other, in a rotating order so that drift in host load
hits every variant alike: ``plain`` (one busybox container, as bench/pod_start.py), ``share`` (plus
a host directory mounted into the container: virtiofsd, shared memfd guest memory) and ``volume``
(plus a new 64 MiB qcow2 disk volume mounted into the container: made on the host, then mounted in
the guest). Timed: ``ensure_pod`` from call to return (containers running), and the module's
``timings`` (agent_ready, storage_ready). Each pod is removed after its start (volumes purged; not
timed). Figures are medians and ratios against ``plain`` of the same run.

    PYTHONPATH=.build/collections .venv/bin/python bench/storage_start.py --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from typing import Any, Optional

from _common import PREFIX, load_average, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod

VARIANTS = ("plain", "share", "volume")
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"


def params(name: str, variant: str, args: argparse.Namespace, share: str, state: str) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = []
    if variant == "share":
        volumes.append({"name": "share", "host_path": share})
    elif variant == "volume":
        volumes.append({"name": name + "-vol", "size": "64M"})
    base: dict[str, Any] = {"name": name, "state": state, "root": args.root, "uri": args.uri, "stop_timeout": 0}
    if state == "absent":
        return {**base, "volumes": volumes or None, "volumes_purge": True}
    container: dict[str, Any] = {"name": "sleeper", "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
    if volumes:
        container["volumes"] = [{"name": volumes[0]["name"], "path": "/mnt/v"}]
    return {**base, "memory": args.memory, "accelerator": "tcg", "containers": [container], "volumes": volumes or None}


def one(variant: str, args: argparse.Namespace, share: str) -> dict[str, float]:
    name = f"{PREFIX}st-{variant}-{secrets.token_hex(3)}"
    try:
        start = time.monotonic()
        result = ensure_pod(params(name, variant, args, share, "started"), False)
        wall = time.monotonic() - start
        timings = result.get("timings") or {}
        return {"wall": wall, "agent_ready": float(timings.get("agent_ready", 0)), "running": float(timings.get("containers_running", 0))}
    finally:
        ensure_pod(params(name, variant, args, share, "absent"), False)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--container-image", default=DEFAULT_IMAGE)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--memory", type=int, default=128)
    args = parser.parse_args(argv)
    sigterm_interrupts()
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix=PREFIX + "share-") as share:
        try:
            one("plain", args, share)  # warm-up: image cache, not counted
            for round_ in range(args.rounds):
                order = VARIANTS[round_ % 3 :] + VARIANTS[: round_ % 3]
                for variant in order:
                    samples[variant].append(one(variant, args, share))
                print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{v} {samples[v][-1]['wall']:.2f}s" for v in VARIANTS), flush=True)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    print(f"\nmedians of {args.rounds} rounds; load average before {load_before}, after {load_average()}")
    print(f"{'variant':8} {'VM start → agent':>17} {'call → running':>15} {'ratio to plain':>15}")
    plain = statistics.median(s["wall"] for s in samples["plain"])
    for variant in VARIANTS:
        agent = statistics.median(s["agent_ready"] for s in samples[variant])
        wall = statistics.median(s["wall"] for s in samples[variant])
        print(f"{variant:8} {agent:16.2f}s {wall:14.2f}s {wall / plain:15.2f}")
    with contextlib.suppress(ZeroDivisionError):
        pairs = [s["wall"] / p["wall"] for s, p in zip(samples["share"], samples["plain"])]
        print(f"share/plain per round: {', '.join(f'{r:.2f}' for r in pairs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
