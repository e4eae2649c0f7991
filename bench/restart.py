# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restart benchmark: QEMU killed → the pod's containers running again (hyper-hostd), against a cold start.

Each round, with a fresh pod of the same spec (restart_policy always, one busybox container
``sleep 3600`` from a local OCI layout):

- cold: ``ensure_pod`` with ``state: started`` (hyper_pod's call), timed from the call to its return
  (the containers run);
- restart: SIGKILL to the pod's QEMU, timed from the kill to the host service's ``restarted`` event
  (written when its ``ensure_pod`` returned: the containers run again); the event's ``delay`` (the
  back-off of a first restart) and ``seconds`` (its start) split it. The pod is then checked
  (containers running) and removed, not timed.

A fresh pod each round: the back-off of one pod grows with each restart within 120 s, a new pod's
first restart is what a crash meets. A warm-up round comes first (image cache warm), excluded.
The host service must run for the state root, or is started (this checkout's) and stopped again.

    flock /tmp/hyper-integration.lock env PYTHONPATH=.build/collections .venv/bin/python bench/restart.py --runs 5

Pods are named bench-rs-*; all are removed also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any, Optional

from _common import PREFIX, REPO, BenchPod, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import read_events
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import running_pid
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.view import pod_info
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient

DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"
LAUNCHER = os.path.join(REPO, "roles", "host", "files", "hyper-hostd")
RESTART_TIMEOUT = 180.0
POLL = 0.05


def spec(image: str) -> dict[str, Any]:
    return {"restart_policy": "always", "containers": [{"name": "sleeper", "image": image, "command": ["sleep", "3600"]}]}


def qemu_pid(vm_id: str) -> int:
    with open(f"/run/libvirt/qemu/{vm_id}.pid", encoding="ascii") as handle:
        return int(handle.read().strip())


def cold(pod: BenchPod) -> float:
    pod.created = True
    started = time.monotonic()
    ensure_pod(pod.params("started"), False)
    return time.monotonic() - started


def restart(pod: BenchPod, root: str, vm_id: str) -> tuple[float, float, float, float]:
    """Kill the pod's QEMU; (kill → restarted, the back-off delay, the service's start, kill → libvirt's event) in seconds."""
    killed = time.time()
    os.kill(qemu_pid(vm_id), signal.SIGKILL)
    deadline = time.monotonic() + RESTART_TIMEOUT
    while time.monotonic() < deadline:
        seen = read_events(root, pod.name, killed)
        events = [e for e in seen if e["event"] in ("restarted", "restart_failed")]
        if events:
            event = events[0]
            if event["event"] != "restarted":
                raise RuntimeError(f"pod {pod.name}: the restart failed: {event}")
            crash = next((e for e in seen if e["event"] == "crashed"), None)
            detected = float(crash["time"]) - killed if crash else float("nan")  # libvirt's event (its callback's time)
            return float(event["time"]) - killed, float(event.get("delay") or 0.0), float(event.get("seconds") or 0.0), detected
        time.sleep(POLL)
    raise RuntimeError(f"pod {pod.name}: not restarted within {RESTART_TIMEOUT:g} s (is hyper-hostd running?)")


def check_running(pod: BenchPod, uri: str) -> None:
    info = pod_info({"name": pod.name, "uri": uri})
    states = [c["state"] for c in info["pods"][0]["containers"]] if info["pods"] else []
    if states != ["running"]:
        raise RuntimeError(f"pod {pod.name}: containers {states} after the restart")


def ensure_service(root: str) -> Optional[int]:
    """The pid of a service this run started (None: one ran already)."""
    if running_pid(root) is not None:
        return None
    collections = os.path.join(REPO, ".build", "collections")  # this checkout (make collection)
    subprocess.run([sys.executable, LAUNCHER, "--root", root, "--collections-path", collections, "--daemon"], check=True)
    for _wait in range(100):
        pid = running_pid(root)
        if pid is not None:
            return pid
        time.sleep(0.2)
    raise RuntimeError("hyper-hostd did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    sigterm_interrupts()
    started_service = ensure_service(args.root)
    pid = running_pid(args.root)
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        argv = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    print(f"hyper-hostd pid {pid}{' (started by this run)' if started_service else ''}: {argv}; load average {load_average()}")
    client = LibvirtClient.open(args.uri)
    colds: list[float] = []
    restarts: list[tuple[float, float, float, float]] = []
    try:
        for index in range(args.runs + 1):
            pod = BenchPod(client, PREFIX + "rs-", args.root, args.uri, spec(args.image))
            try:
                cold_s = cold(pod)
                found = pod_info({"name": pod.name, "uri": args.uri})["pods"][0]
                figures = restart(pod, args.root, str(found["vm_id"]))
                check_running(pod, args.uri)
            finally:
                pod.cleanup()
            label = "warm-up" if index == 0 else f"run {index}"
            print(
                f"{label}: cold {cold_s:.2f} s; restart {figures[0]:.2f} s (libvirt's event after {figures[3]:.2f} s, back-off {figures[1]:.2f} s,"
                f" start {figures[2]:.2f} s); load {load_average()}"
            )
            if index:
                colds.append(cold_s)
                restarts.append(figures)
    finally:
        client.close()
        if started_service:
            subprocess.run([sys.executable, LAUNCHER, "--root", args.root, "--stop"], check=False)
    total = median(r[0] for r in restarts)
    start = median(r[2] for r in restarts)
    backoff = median(r[1] for r in restarts)
    cold_median = median(colds)
    print(f"medians of {args.runs}: cold start {cold_median:.2f} s; kill → containers running again {total:.2f} s", end="")
    print(f" (of it libvirt's event after {median(r[3] for r in restarts):.2f} s, the back-off {backoff:.2f} s, the start {start:.2f} s)")
    print(f"ratio restart / cold start: {total / cold_median:.2f} (goal <= 1.0); the restart's start alone / cold start: {start / cold_median:.2f}")
    print(f"load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
