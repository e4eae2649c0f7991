# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_service: render + apply for 10, 100 and 1,000 services; one service changed among 1,000.

Two parts, each printing medians and ratios measured in the same run:

1. Library only (no VM): the collection's haproxy template rendered with Jinja2 (the engine the
   action plugin's templar runs), then plan + apply against an in-memory service container that
   counts what it is asked to do. Shows what rendering and planning cost as the count grows.
2. A real pod (``bench-svc-<hex>``: the haproxy image of the haproxy_image role and one busybox
   backend), through ``HaproxyGuest``: the real agent calls, ``haproxy -c``, ``ip addr`` on the
   pod's ``lo`` and a master-worker reload. For each size: a full apply onto an empty service
   container (the "full re-apply" baseline), an unchanged re-run, and one service changed among
   them (its backends; then one service added on a new VIP), each with its VIP operations and
   reloads counted. The ratio is one change / full re-apply.

Needs root, libvirtd, the default guest image and the two local images (roles haproxy_image and
busybox_image, by default under /var/lib/hyper-test/images as the integration tests build them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import time
from typing import Any, Callable, Optional

from _common import REPO, load_average, median, sigterm_interrupts
from ansible.plugins.filter.core import comment
from jinja2 import Environment, StrictUndefined

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.engine import ApplyCounts, apply_plan
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.haproxy import HaproxyGuest, ServiceGuestApi
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import plan_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import normalise_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import running_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient

TEMPLATE = os.path.join(REPO, "plugins", "templates", "haproxy.cfg.j2")
IMAGES = "/var/lib/hyper-test/images/oci"
POD_PREFIX = "bench-svc-"


def render(services: list[dict[str, Any]]) -> str:
    """As the action plugin does: the collection's template, ``ansible_managed`` and the service list."""
    env = Environment(undefined=StrictUndefined, trim_blocks=True, keep_trailing_newline=True)
    env.filters["comment"] = comment
    with open(TEMPLATE, encoding="utf-8") as handle:
        return env.from_string(handle.read()).render(services=services, ansible_managed="Ansible managed")


def make_services(count: int, extra: int = 0) -> list[dict[str, Any]]:
    """``count`` services on distinct VIPs 10.96.X.Y, each balanced over the pod's backend."""
    raw = [
        {"name": f"svc-{i:04d}", "address": f"10.96.{i // 250}.{i % 250 + 1}", "port": 80, "backends": [{"address": "127.0.0.1", "port": 8081}]}
        for i in range(count + extra)
    ]
    return normalise_services(raw, "present")


def change_one(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    changed = [dict(s) for s in services]
    middle = len(changed) // 2
    changed[middle] = {
        **changed[middle],
        "backends": [*changed[middle]["backends"], {**changed[middle]["backends"][0], "port": 8082, "endpoint": "ipv4@127.0.0.1:8082"}],
    }
    return changed


def apply(guest: ServiceGuestApi, services: list[dict[str, Any]]) -> tuple[float, ApplyCounts]:
    """Render, read, plan and apply; seconds and what was done."""
    start = time.monotonic()
    config = render(services)
    plan = plan_services(guest.read_state(), guest.read_config(), services, config)
    counts = apply_plan(guest, plan)
    return time.monotonic() - start, counts


class MemoryGuest:
    """An in-memory service container: the library's cost without the agent's."""

    config_path = "/etc/haproxy/haproxy.cfg"

    def __init__(self) -> None:
        self.state: Optional[dict[str, Any]] = None
        self.config = ""
        self.candidate = ""
        self.vips: set[str] = set()

    def check_running(self) -> None:
        return None

    def read_config(self) -> str:
        return self.config

    def read_state(self) -> Optional[dict[str, Any]]:
        return self.state

    def validate(self, config: str) -> None:
        self.candidate = config

    def install_config(self) -> None:
        self.config = self.candidate

    def write_config(self, config: str) -> None:
        self.config = config

    def discard_candidate(self) -> None:
        self.candidate = ""

    def add_vips(self, vips: Any) -> None:
        self.vips |= set(vips)

    def remove_vips(self, vips: Any) -> None:
        self.vips -= set(vips)

    def reload(self) -> None:
        return None

    def write_state(self, state: dict[str, Any]) -> None:
        self.state = state


def fmt(counts: ApplyCounts) -> str:
    return f"{counts.vip_operations} VIP ops, {counts.reloads} reload(s)"


def measure(make_guest: Callable[[], ServiceGuestApi], reset: Callable[[ServiceGuestApi], None], sizes: list[int], runs: int, label: str) -> None:
    print(f"\n== {label} ==")
    print(f"{'services':>8} {'full apply s':>13} {'re-run s':>9} {'one change s':>13} {'one added s':>12}  one change / full   one added / full   counts")
    guest = make_guest()
    for size in sizes:
        base = make_services(size)
        changed = change_one(base)
        added = make_services(size, extra=1)
        full: list[float] = []
        rerun: list[float] = []
        one: list[float] = []
        plus: list[float] = []
        notes: dict[str, str] = {}
        for _run in range(runs):
            reset(guest)
            seconds, counts = apply(guest, base)
            full.append(seconds)
            notes["full"] = fmt(counts)
            seconds, counts = apply(guest, base)
            rerun.append(seconds)
            notes["re-run"] = fmt(counts)
            seconds, counts = apply(guest, changed)
            one.append(seconds)
            notes["one change"] = fmt(counts)
            seconds, counts = apply(guest, added)
            plus.append(seconds)
            notes["one added"] = fmt(counts)
        f, r, o, p = median(full), median(rerun), median(one), median(plus)
        print(
            f"{size:>8} {f:>13.3f} {r:>9.3f} {o:>13.3f} {p:>12.3f}  {o / f:>17.3f}  {p / f:>17.3f}   " + "; ".join(f"{k}: {v}" for k, v in notes.items()),
            flush=True,
        )


def memory_reset(guest: ServiceGuestApi) -> None:
    assert isinstance(guest, MemoryGuest)
    guest.__init__()  # type: ignore[misc]


def pod_params(name: str, state: str, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "state": state, "uri": args.uri}
    if state == "absent":
        return {**params, "stop_timeout": 0}
    return {
        **params,
        "memory": args.memory,
        "accelerator": "tcg",
        "containers": [
            {"name": "haproxy", "image": f"oci:{args.images}:haproxy", "stop_timeout": 0},
            {"name": "web", "image": f"oci:{args.images}:busybox", "command": ["httpd", "-f", "-p", "8081"], "stop_timeout": 0},
        ],
    }


def pod_reset(guest: ServiceGuestApi) -> None:
    """An empty service container: no service, no VIP (the baseline starts from here)."""
    apply(guest, [])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="service counts")
    parser.add_argument("--runs", type=int, default=5, help="runs per size, library part")
    parser.add_argument("--pod-runs", type=int, default=3, help="runs per size, pod part")
    parser.add_argument("--pod-sizes", default=None, help="service counts of the pod part (default: --sizes)")
    parser.add_argument("--no-pod", action="store_true", help="library part only")
    parser.add_argument("--images", default=IMAGES, help="OCI layout with the haproxy and busybox tags")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--memory", type=int, default=256, help="MiB")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    pod_sizes = [int(s) for s in (args.pod_sizes or args.sizes).split(",")]
    sigterm_interrupts()
    print(f"load average before: {load_average()}")
    measure(MemoryGuest, memory_reset, sizes, args.runs, f"library only: render + plan + apply, in-memory container, median of {args.runs}")
    if args.no_pod:
        return 0
    name = POD_PREFIX + secrets.token_hex(4)
    created = False
    try:
        print(f"\ncreating pod {name}", flush=True)
        created = True
        ensure_pod(pod_params(name, "started", args), False)
        with LibvirtClient.open(args.uri) as client:
            found = running_pod(client, name)
            dom, vm_id = found.dom, found.current.vm_id
            agent = GuestAgent(LibvirtAgentTransport(dom, vm_id), name=name)

            def make_guest() -> ServiceGuestApi:
                return HaproxyGuest(agent, "haproxy", reload_timeout=600)

            measure(make_guest, pod_reset, pod_sizes, args.pod_runs, f"real pod (TCG): render + agent + haproxy -c + ip + reload, median of {args.pod_runs}")
    finally:
        if created:
            with contextlib.suppress(HyperError):
                ensure_pod(pod_params(name, "absent", args), False)
        print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
