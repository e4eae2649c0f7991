# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Warm pool benchmark: ``ensure_pod`` call → containers running, from a pool VM against a cold boot, same pod.

Each run, interleaved (the order alternates between runs): a pool of one VM is filled (not timed;
``ensure_pool``), the pod is started and must say ``start: pool``, then removed; the same pod is
started with the pool empty and must say ``start: cold``, then removed. Both are timed with the wall
clock from the call to its return (``wait``: the containers run). Printed: each run, the medians,
pool ÷ cold, and per pooled VM QEMU's resident memory (VmRSS) minus the guest's RAM, measured on the
paused VM just before its claim. The load average is printed before and after.

    PYTHONPATH=.build/collections .venv/bin/python bench/pool_start.py            # 5 runs
    PYTHONPATH=.build/collections .venv/bin/python bench/pool_start.py --runs 7 --json /tmp/pool.json

The pool and the pods are named bench-pool-* / bench-pod-*, the pool's memory is unusual (144 MiB) so
that no other pod claims from it; all are removed at the end, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import time
from typing import Any

from _common import load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.engine import ensure_pool

DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"


def rss_kib(vm_id: str) -> int:
    with open(f"/run/libvirt/qemu/{vm_id}.pid", encoding="ascii") as handle:
        pid = int(handle.read().strip())
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {vm_id}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory", type=int, default=144)
    parser.add_argument("--container-image", default=DEFAULT_IMAGE)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--json")
    args = parser.parse_args()
    sigterm_interrupts()
    tag = secrets.token_hex(3)
    pool = f"bench-pool-{tag}"
    pool_params = {"name": pool, "size": 1, "memory": args.memory, "root": args.root}

    def pod_params(name: str, state: str) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "state": state, "root": args.root, "stop_timeout": 0}
        if state != "absent":
            params.update(memory=args.memory, containers=[{"name": "sleeper", "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}])
        return params

    def start(name: str, expected: str) -> float:
        began = time.monotonic()
        result = ensure_pod(pod_params(name, "started"), False)
        seconds = time.monotonic() - began
        if result.get("start") != expected:
            raise SystemExit(f"{name}: expected start {expected}, got {result.get('start')}: {result.get('start_reason')}")
        ensure_pod(pod_params(name, "absent"), False)
        return seconds

    load_before = load_average()
    samples: dict[str, list[float]] = {"pool": [], "cold": []}
    overhead: list[int] = []
    names: list[str] = []
    try:
        # Warm-up (image cache, page cache of kernel and initrd): one cold start, excluded.
        names.append(f"bench-pod-{tag}-w")
        start(names[-1], "cold")
        for run in range(args.runs):
            order = ("pool", "cold") if run % 2 == 0 else ("cold", "pool")
            for path in order:
                name = f"bench-pod-{tag}-{run}{path[0]}"
                names.append(name)
                if path == "pool":
                    filled = ensure_pool(pool_params, False)
                    vm_id = filled["pool"]["vms"][0]["vm_id"]
                    overhead.append(rss_kib(vm_id) // 1024 - args.memory)
                samples[path].append(start(name, path))
                print(f"run {run + 1} {path}: {samples[path][-1]:.3f} s", flush=True)
    finally:
        for name in names:
            with contextlib.suppress(HyperError):
                ensure_pod(pod_params(name, "absent"), False)
        with contextlib.suppress(HyperError):
            ensure_pool({**pool_params, "state": "absent"}, False)
    pool_s, cold_s = median(samples["pool"]), median(samples["cold"])
    summary = {
        "runs": args.runs,
        "pool_median_s": round(pool_s, 3),
        "cold_median_s": round(cold_s, 3),
        "pool_over_cold": round(pool_s / cold_s, 3),
        "rss_minus_guest_ram_mib_median": median(overhead),
        "memory_mib": args.memory,
        "load_before": load_before,
        "load_after": load_average(),
        "samples": samples,
        "rss_minus_guest_ram_mib": overhead,
    }
    print(f"pool start  (call → containers running): median {pool_s:.3f} s of {args.runs}")
    print(f"cold start  (same pod):                  median {cold_s:.3f} s of {args.runs}")
    print(f"pool ÷ cold: {pool_s / cold_s:.3f}")
    print(f"per pooled {args.memory} MiB VM, QEMU RSS - guest RAM: median {median(overhead):.0f} MiB ({overhead})")
    print(f"load average before: {load_before}; after: {summary['load_after']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
