# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pod start benchmark: ``ensure_pod`` (hyper_pod) cold start → containers running, against a raw boot.

Each run, alternating who goes first:

- ours: ``ensure_pod`` with ``state: started`` and one busybox container (``sleep 3600``) from a
  local OCI layout, timed with the wall clock from the call to its return, with the module's
  ``timings`` and with marks taken by thin wrappers around the library's collaborators (libvirt
  start, agent answers, config written, container started, running). The pod is then removed
  (not timed).
- baseline: plain ``libvirt.open``, a minimal hand-written domain XML with the same kernel,
  initrd, command line and memory, ``createXML``, ``qemuAgentCommand(guest-ping)`` with fixed
  sleeps until it answers, then one raw guest-exec of ``crun --version`` for reference.

The breakdown of our runs puts everything on one clock: the guest console log is read while it
grows (host time of each line), the ``hyper-init: <uptime> <stage>`` markers of the guest init
give the host time of guest uptime 0 (kernel start), and the container's state files in the
guest (their mtimes, read after the run) give the start script's and crun's steps. With
``--kernel-log N`` (default 1) N extra runs add ``printk.time=1 loglevel=7`` to split the kernel's
own part (initramfs unpack, slowest gaps); they are reported apart, not in the medians.

    PYTHONPATH=.build/collections .venv/bin/python bench/pod_start.py             # 5 runs
    PYTHONPATH=.build/collections .venv/bin/python bench/pod_start.py --runs 9 --json /tmp/pod.json
    PYTHONPATH=.build/collections .venv/bin/python bench/pod_start.py --image default,podkernel   # package vs built kernel

With several images (comma-separated, the package kernel's first) the runs of all images are
interleaved and a last table compares each with the first: kernel init (guest uptime 0 → /init),
VM start → agent answers, call → containers running, as medians with the ratio to the first.

A warm-up create+remove comes first (image cache warm), excluded. Every pod is named bench-pod-*
and every raw domain bench-raw-*; all are destroyed (pods undefined) also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Sequence

from _common import PREFIX, Sample, Tracker, load_average, median, run_baseline, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import GuestImage, load_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_path
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.domain import discard_vm
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import list_pods
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import GuestPodApi, default_guest_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import remove_volume
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient

POD_PREFIX = PREFIX + "pod-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"
CONTAINER = "sleeper"
CONTAINER_DIR = f"/run/hyper/containers/{CONTAINER}"
KERNEL_LOG_ARGS = "printk.time=1 loglevel=7"
# How often the console log is read; also the resolution of the host times of its lines.
CONSOLE_POLL = 0.005
MARKER = re.compile(r"hyper-init: (\d+\.\d+) (\S+)\s*$")
KERNEL_LINE = re.compile(r"^\[\s*(\d+\.\d+)\] (.*)$")
# Guest init stages in boot order (templates init.sh.j2, rc.sh.j2, agent.sh.j2).
STAGES = ("stage1", "switch-root", "stage2", "modules", "rc-done", "qemu-ga")
# Files the guest's hyper-container writes, in order (put() replaces them, so mtime = when written):
# container.json (host write, last step of write_container), restarts (start, after the image and
# overlay mounts), supervisor (the supervisor is up), pid (crun's pid file appeared: container created).
GUEST_FILES = ("container.json", "restarts", "supervisor", "pid")
GUEST_SCRIPT = (
    'read -r up _ </proc/uptime; : >/run/.bench-ref; echo "ref $up $(stat -c %y /run/.bench-ref)"; rm -f /run/.bench-ref; '
    f'for f in {" ".join(GUEST_FILES)}; do echo "$f - $(stat -c %y {CONTAINER_DIR}/$f)"; done'
)

# (label, from mark, to mark): consecutive steps of one pod start on the host's clock.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("host: spec, image digest, disks, define", "call", "start_call"),
    ("libvirt: start QEMU (virDomainCreate)", "start_call", "started"),
    ("QEMU + firmware + kernel decompress", "started", "kernel"),
    ("kernel init, initramfs unpack", "kernel", "stage1"),
    ("init stage1: copy root to tmpfs", "stage1", "switch-root"),
    ("switch_root → busybox init", "switch-root", "stage2"),
    ("rc: mounts, cgroups, insmod", "stage2", "modules"),
    ("rc rest, agent script, port", "modules", "qemu-ga"),
    ("qemu-ga start → host's ping answered", "qemu-ga", "agent_ready"),
    ("write config (mkdir + 2 files)", "agent_ready", "written"),
    ("hyper-container start: mounts", "written", "mounted"),
    ("hyper-container start: supervisor", "mounted", "supervisor"),
    ("crun: delete + run → container pid", "supervisor", "crun_pid"),
    ("seen running + settle (wait_running)", "crun_pid", "running"),
    ("result: pod view", "running", "returned"),
)
# A pod with a config disk (pod/selfboot.py): the guest's hyper-boot brings the pod up while qemu-ga
# starts; the host waits for the agent, then asks once (hyper-boot wait). Guest markers of hyper-boot.
SELFBOOT_PHASES: tuple[tuple[str, str, str], ...] = (
    ("rc done → hyper-boot found its config disk", "rc-done", "pod-boot"),
    ("hyper-boot: extract, image and overlay mounts", "pod-boot", "mounted"),
    ("hyper-container start: supervisor up", "mounted", "supervisor"),
    ("supervisor: crun delete + run → container pid", "supervisor", "crun_pid"),
    ("(hyper-boot: plan carried out)", "pod-boot", "pod-started"),
    ("(container pid → the guest's own 0.5 s settle)", "crun_pid", "pod-settled"),
    ("qemu-ga start → host's ping answered", "qemu-ga", "agent_ready"),
    ("agent answered → hyper-boot wait returned", "agent_ready", "boot_answered"),
    ("container pid → host's status: up (wait_settle)", "crun_pid", "booted"),
    ("result: ports, pod view", "booted", "returned"),
)


# -- one clock for host and guest --------------------------------------------------------------


class ConsoleWatcher:
    """Reads a growing console log every few ms and notes the host time each line appeared."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        handle = None
        pending = b""
        try:
            while True:
                stopping = self._stop.is_set()
                if handle is None:
                    with contextlib.suppress(FileNotFoundError):
                        handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
                if handle is not None:
                    data = handle.read()
                    if data:
                        now = time.monotonic()
                        *complete, pending = (pending + data).split(b"\n")
                        self.lines.extend((now, line.decode("utf-8", "replace").rstrip("\r")) for line in complete)
                if stopping:
                    break
                self._stop.wait(CONSOLE_POLL)
        finally:
            if handle is not None:
                handle.close()

    def stop(self) -> list[tuple[float, str]]:
        self._stop.set()
        self._thread.join()
        return self.lines


@dataclass
class Probe:
    """Host-clock marks of one pod start, taken by the wrappers below."""

    root: str
    marks: dict[str, float] = field(default_factory=dict)
    vm_id: Optional[str] = None
    watcher: Optional[ConsoleWatcher] = None

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.monotonic())


class TimedClient(LibvirtClient):
    """LibvirtClient that marks the VM start and starts reading the console log at that moment."""

    probe: Optional[Probe] = None

    def start(self, dom: Domain) -> None:
        probe = self.probe
        if probe is not None and probe.vm_id is None:
            probe.vm_id = str(dom.name())
            probe.watcher = ConsoleWatcher(console_path(probe.root, probe.vm_id))
            probe.mark("start_call")
        super().start(dom)
        if probe is not None:
            probe.mark("started")


class TimedGuestPod:
    """GuestPod that marks when its steps return; created by the engine once the agent answered."""

    def __init__(self, inner: GuestPodApi, probe: Probe) -> None:
        self.inner = inner
        self.probe = probe

    def write_container(self, name: str, config: dict[str, Any], meta: dict[str, Any]) -> Any:
        result = self.inner.write_container(name, config, meta)
        self.probe.mark("written")
        return result

    def start(self, name: str) -> Any:
        result = self.inner.start(name)
        self.probe.mark("start_returned")
        return result

    def wait_running(self, names: Sequence[str], timeout: float, settle: float = DEFAULT_SETTLE) -> Any:
        result = self.inner.wait_running(names, timeout, settle)
        self.probe.mark("running")
        return result

    def wait_settled(self, watch: Any, timeout: float, first: Any = None, **kwargs: Any) -> Any:
        result = self.inner.wait_settled(watch, timeout, first, **kwargs)
        self.probe.mark("settled")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def probe_deps(probe: Probe, uri: str) -> PodSession:
    def open_client(uri: str) -> LibvirtClient:
        client = TimedClient.open(uri)
        assert isinstance(client, TimedClient)
        client.probe = probe
        return client

    def make_guest_pod(agent: GuestAgent) -> GuestPodApi:
        probe.mark("agent_ready")
        return TimedGuestPod(default_guest_pod(agent), probe)  # type: ignore[return-value]

    return PodSession(uri, open_client=open_client, make_guest_pod=make_guest_pod)


def guest_wall(text: str) -> float:
    """Seconds since the epoch of busybox ``stat -c %y`` (``2026-11-28 19:11:38.123456789 +0000``)."""
    day, clock, _zone = text.split()
    whole, _dot, frac = clock.partition(".")
    moment = datetime.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    return moment.timestamp() + float("0." + (frac or "0"))


def guest_file_uptimes(client: LibvirtClient, vm_id: str) -> dict[str, float]:
    """Guest uptime at which each of GUEST_FILES was last written (the guest clock: wall ↔ uptime via a fresh file)."""
    agent = GuestAgent(LibvirtAgentTransport(client.lookup(vm_id), vm_id))
    result = agent.exec(["sh", "-c", GUEST_SCRIPT], timeout=30)
    ref_up = ref_wall = None
    walls: dict[str, float] = {}
    for line in result.stdout.decode("utf-8", "replace").splitlines():
        word, value, stamp = line.split(" ", 2)
        if not stamp.strip():
            continue
        if word == "ref":
            ref_up, ref_wall = float(value), guest_wall(stamp)
        else:
            walls[word] = guest_wall(stamp)
    if ref_up is None or ref_wall is None:
        return {}
    return {name: ref_up - (ref_wall - wall) for name, wall in walls.items()}


def kernel_offset(lines: Sequence[tuple[float, str]]) -> Optional[float]:
    """Host time of guest uptime 0: the earliest (host time seen - uptime) over the init markers.

    A marker is printed synchronously by the init and read within CONSOLE_POLL; its uptime is
    truncated to 10 ms, so the estimate is good to about ±10 ms.
    """
    offsets = [seen - float(m.group(1)) for seen, line in lines if (m := MARKER.search(line))]
    return min(offsets) if offsets else None


# -- the runs ------------------------------------------------------------------------------------


@dataclass
class PodSample:
    wall: float  # ensure_pod call → return
    timings: dict[str, float]  # the module's own: from the VM start
    marks: dict[str, float]  # host clock, seconds since the call
    kernel_lines: list[tuple[float, str]]  # printk lines (uptime, text), --kernel-log runs only

    def at(self, name: str) -> Optional[float]:
        return self.marks.get(name)


class Bench:
    def __init__(self, client: LibvirtClient, args: argparse.Namespace, image: GuestImage, settle: Optional[float] = None) -> None:
        self.client = client
        self.args = args
        self.image = image
        self.settle = settle  # hyper_pod's wait_settle (None: the module's default)
        self.label = image.name if settle is None else f"{image.name} wait_settle={settle:g}"
        self.raw = Tracker(client)
        self.pods: set[str] = set()

    def pod_params(self, name: str, state: str, kernel_args: str = "") -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "state": state, "root": self.args.root, "uri": self.args.uri}
        volumes = self.volumes(name)
        if state == "absent":
            # Removal is not measured: no graceful stop of `sleep` (PID 1 ignores SIGTERM).
            params["stop_timeout"] = 0
            params.update(volumes=volumes, volumes_purge=True)
            return params
        container: dict[str, Any] = {"name": CONTAINER, "image": self.args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
        if volumes:
            container["volumes"] = [{"name": v["name"], "path": f"/mnt/{v['name']}"} for v in volumes]
        params.update(memory=self.args.memory, accelerator=self.args.accelerator, guest_image=self.image.name, containers=[container], volumes=volumes or None)
        if self.settle is not None:
            params["wait_settle"] = self.settle
        if kernel_args:
            params["kernel_args"] = kernel_args
        return params

    def volumes(self, name: str) -> list[dict[str, Any]]:
        """--share: a virtio-fs share (memfd memory backing); --volume: a disk volume made for this pod (purged with it)."""
        volumes: list[dict[str, Any]] = []
        if self.args.share:
            volumes.append({"name": "share", "host_path": self.args.share})
        if self.args.volume:
            volumes.append({"name": name + "-vol", "size": self.args.volume})
        return volumes

    def remove_pod(self, name: str) -> None:
        ensure_pod(self.pod_params(name, "absent"), False)
        self.pods.discard(name)

    def run_ours(self, kernel_args: str = "") -> PodSample:
        name = POD_PREFIX + secrets.token_hex(4)
        self.pods.add(name)
        probe = Probe(self.args.root)
        try:
            call = time.monotonic()
            probe.marks["call"] = call
            result = ensure_pod(self.pod_params(name, "started", kernel_args), False, False, probe_deps(probe, self.args.uri))
            probe.mark("returned")
            lines = probe.watcher.stop() if probe.watcher else []
            marks = {k: v - call for k, v in probe.marks.items()}
            offset = kernel_offset(lines)
            timings = result.get("timings") or {}
            if "start_call" in marks:  # the module's own timings count from the VM start
                for timing, mark in (("agent_ready", "agent_ready"), ("pod_booted", "boot_answered"), ("containers_running", "booted")):
                    if timing in timings:
                        marks[mark] = marks["start_call"] + float(timings[timing])
            kernel: list[tuple[float, str]] = []
            if offset is not None:
                marks["kernel"] = offset - call
                for _seen, line in lines:
                    if m := MARKER.search(line):
                        marks.setdefault(m.group(2), offset + float(m.group(1)) - call)
                    elif m := KERNEL_LINE.match(line):
                        kernel.append((float(m.group(1)), m.group(2)))
                # Not timed: the pod runs; read its container's state files.
                if probe.vm_id:
                    files = guest_file_uptimes(self.client, probe.vm_id)
                    for mark, file in (("written_guest", "container.json"), ("mounted", "restarts"), ("supervisor", "supervisor"), ("crun_pid", "pid")):
                        if file in files:
                            marks[mark] = offset + files[file] - call
            return PodSample(marks["returned"], dict(result.get("timings") or {}), marks, kernel)
        finally:
            if probe.watcher is not None:
                probe.watcher.stop()
            self.remove_pod(name)

    def run_baseline(self) -> Sample:
        cmdline = f"{self.image.kernel_args} hyper.hostname={POD_PREFIX}raw"
        return run_baseline(self.raw, self.args.root, self.image, self.args.memory, ["crun", "--version"], cmdline)

    def cleanup(self) -> None:
        self.raw.cleanup()
        if not self.pods:
            return
        with contextlib.suppress(HyperError):
            for found in list_pods(self.client):
                if found.current.spec.get("name") in self.pods:
                    discard_vm(self.client, found.dom, self.args.root, found.current.vm_id)
        for name in self.pods:
            with contextlib.suppress(OSError):
                remove_volume(self.args.root, name + "-vol")
        self.pods.clear()


# -- report ----------------------------------------------------------------------------------------


def phase_rows(samples: Sequence[PodSample], phases: Sequence[tuple[str, str, str]] = PHASES) -> list[tuple[str, float, int]]:
    """(label, median seconds, how many runs had both marks) for each step of ``phases``."""
    rows = []
    for label, begin, end in phases:
        values = [e - b for s in samples if (b := s.at(begin)) is not None and (e := s.at(end)) is not None]
        if values:
            rows.append((label, median(values), len(values)))
    return rows


def print_breakdown(samples: Sequence[PodSample]) -> None:
    if any(s.at("pod-boot") is not None for s in samples):
        print_selfboot(samples)
        return
    rows = phase_rows(samples)
    total = median(s.wall for s in samples)
    print(f"\nbreakdown of ours (median per phase over {len(samples)} runs; phases are consecutive on the host clock)")
    print(f"{'phase':<42} {'median s':>8} {'share':>6}")
    print("-" * 58)
    for label, value, count in rows:
        note = "" if count == len(samples) else f"  ({count} runs)"
        print(f"{label:<42} {value:>8.3f} {value / total:>6.0%}{note}")
    print("-" * 58)
    print(f"{'sum of phase medians':<42} {sum(v for _l, v, _c in rows):>8.3f}")
    print(f"{'median total (call → return)':<42} {total:>8.3f}")
    groups = {
        "VM + kernel (start → guest uptime 0 → /init)": ("libvirt:", "QEMU +", "kernel init"),
        "guest init → agent answers": ("init stage1", "switch_root", "rc:", "rc rest", "qemu-ga"),
        "containers (config, start, crun, settle)": ("write config", "hyper-container", "crun", "seen running"),
    }
    print("\nby part:")
    for group, prefixes in groups.items():
        value = sum(v for label, v, _c in rows if label.startswith(prefixes))
        print(f"  {group:<46} {value:>6.3f} s {value / total:>5.0%}")
    label, value, _count = max(rows, key=lambda r: r[1])
    print(f"largest single phase: {label} ({value:.3f} s, {value / total:.0%} of the total)")


def print_selfboot(samples: Sequence[PodSample]) -> None:
    """The breakdown of a self-booting pod: the host and kernel up to rc, then the two guest paths side by side."""
    total = median(s.wall for s in samples)
    print(f"\nbreakdown of ours (median per phase over {len(samples)} runs, host clock; the pod's boot runs beside qemu-ga)")
    print(f"{'phase':<46} {'median s':>8} {'share':>6}")
    for title, phases in (("up to the guest's rc", PHASES[:8]), ("then, in parallel in the guest, and the host's wait", SELFBOOT_PHASES)):
        print(f"-- {title}")
        for label, value, count in phase_rows(samples, phases):
            note = "" if count == len(samples) else f"  ({count} runs)"
            print(f"{label:<46} {value:>8.3f} {value / total:>6.0%}{note}")
    marks = (
        *("rc-done", "qemu-ga", "agent_ready", "pod-boot", "mounted", "supervisor", "crun_pid"),
        *("pod-started", "boot_answered", "pod-settled", "booted", "returned"),
    )
    at = {m: [v for s in samples if (v := s.at(m)) is not None] for m in marks}
    print("since the call: " + ", ".join(f"{m} {median(v):.3f}" for m, v in at.items() if v))
    print(f"{'median total (call → return)':<46} {total:>8.3f}")


def print_kernel(samples: Sequence[PodSample]) -> None:
    """The kernel's own part, from printk timestamps of the --kernel-log runs."""
    if not samples or not any(s.kernel_lines for s in samples):
        return
    events = {
        "unpack start": "Trying to unpack rootfs image as initramfs",
        "unpack done": "Freeing initrd memory",
        "run /init": "Run /init as init process",
    }
    found: dict[str, list[float]] = {k: [] for k in events}
    gaps: dict[str, list[float]] = {}
    for sample in samples:
        previous: Optional[tuple[float, str]] = None
        for uptime, text in sample.kernel_lines:
            for key, needle in events.items():
                if needle in text:
                    found[key].append(uptime)
            if previous is not None and uptime >= previous[0]:
                gaps.setdefault(f"{previous[1][:48]} → {text[:48]}", []).append(uptime - previous[0])
            previous = (uptime, text)
            if events["run /init"] in text:
                break  # the gaps of the kernel's own init only; the rest is in the breakdown
    walls = ", ".join(f"{s.wall:.2f}" for s in samples)
    print(f"\nkernel, from printk timestamps ({len(samples)} extra run(s) with {KERNEL_LOG_ARGS!r}; call → running {walls} s)")
    for key, values in found.items():
        if values:
            print(f"  guest uptime at {key:<14} {median(values):6.3f} s")
    if found["unpack start"] and found["unpack done"]:
        print(f"  initramfs unpack (async, overlaps other init) {median(found['unpack done']) - median(found['unpack start']):.3f} s")
    print("  slowest gaps between consecutive kernel lines up to /init (printing itself slows them):")
    for key, values in sorted(gaps.items(), key=lambda kv: -median(kv[1]))[:6]:
        print(f"    {median(values):6.3f} s  {key}")


def print_summary(ours: Sequence[PodSample], base: Sequence[Sample], load_before: str) -> None:
    wall = median(s.wall for s in ours)
    running = median(s.timings.get("containers_running", float("nan")) for s in ours)
    agent = median(s.timings.get("agent_ready", float("nan")) for s in ours)
    ping = median(s.ping for s in base)
    crun = median(s.exec for s in base)
    print(f"\npod start, median of {len(ours)} runs each, interleaved; load average before {load_before}, after {load_average()}")
    print(f"{'':<44} {'ours':>7} {'baseline':>9} {'ratio':>6}")
    print(f"{'VM start → agent answers (ours: timings)':<44} {agent:>7.3f} {ping:>9.3f} {agent / ping:>6.2f}")
    print(f"{'call → containers running (wall clock)':<44} {wall:>7.3f} {ping:>9.3f} {wall / ping:>6.2f}")
    print(f"{'  same, module timings (from VM start)':<44} {running:>7.3f}")
    print(f"{'baseline + raw guest-exec crun --version':<44} {'':>7} {crun:>9.3f}")
    print(f"ratio ours (call → running) / baseline (createXML → ping) = {wall / ping:.2f};  / baseline + crun exec = {wall / crun:.2f}")


def kernel_init(sample: PodSample) -> Optional[float]:
    """The kernel's own init: guest uptime 0 → the init's first marker (/init running)."""
    begin, end = sample.at("kernel"), sample.at("stage1")
    return end - begin if begin is not None and end is not None else None


def print_images(results: Sequence[tuple[str, Sequence[PodSample]]]) -> None:
    """Each image against the first one: medians and their ratio (lower is better)."""

    def medians(samples: Sequence[PodSample]) -> tuple[float, float, float]:
        inits = [v for s in samples if (v := kernel_init(s)) is not None]
        return (
            median(inits) if inits else float("nan"),
            median(s.timings.get("agent_ready", float("nan")) for s in samples),
            median(s.wall for s in samples),
        )

    first_name, first = results[0]
    base = medians(first)
    print(f"\nimages against {first_name} (medians of ours; ratio = image / {first_name})")
    header = f"{'image':<14} | {'kernel init':>11} {'ratio':>5} | {'VM start → agent':>16} {'ratio':>5} | {'call → running':>14} {'ratio':>5}"
    print(header)
    print("-" * len(header))
    for name, samples in results:
        values = medians(samples)
        print(f"{name:<14} | " + " | ".join(f"{v:>{w}.3f} {v / b:>5.2f}" for v, b, w in zip(values, base, (11, 16, 14))))


def print_settles(results: Sequence[tuple[str, Sequence[PodSample], Sequence[Sample]]]) -> None:
    """Each wait_settle variant: call → running against its own baselines (createXML → ping) of the same runs."""
    print("\nwait_settle variants (medians; ratio = call → running / createXML → first ping, baselines of the same runs)")
    header = f"{'variant':<34} | {'call → running':>14} | {'baseline ping':>13} | {'ratio':>5}"
    print(header)
    print("-" * len(header))
    for label, samples, baselines in results:
        wall, ping = median(s.wall for s in samples), median(b.ping for b in baselines)
        print(f"{label:<34} | {wall:>14.3f} | {ping:>13.3f} | {wall / ping:>5.2f}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kernel-log", type=int, default=1, metavar="N", help=f"extra runs with {KERNEL_LOG_ARGS!r} for the kernel split (0: none)")
    parser.add_argument("--image", default="default", help="guest image name(s) under <root>/images/, comma-separated (the first is the reference)")
    parser.add_argument("--container-image", default=DEFAULT_IMAGE)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "kvm", "tcg"])
    parser.add_argument("--memory", type=int, default=128, help="MiB, both sides (the pod default)")
    parser.add_argument("--json", help="also write the samples to this file")
    parser.add_argument("--share", metavar="DIR", help="give each pod this host directory as a virtio-fs volume (shared memfd memory)")
    parser.add_argument("--volume", metavar="SIZE", help="give each pod a new disk volume of SIZE (made before the boot, purged after)")
    parser.add_argument(
        "--wait-settle", metavar="S[,S…]", help="hyper_pod's wait_settle, comma-separated: each value is a variant of ours, interleaved (default: the module's)"
    )
    args = parser.parse_args(argv)
    if resolve_accelerator(args.accelerator, args.root) != "tcg":
        parser.error("the baseline XML is written for TCG (type='qemu'); run with --accelerator tcg")
    args.accelerator = "tcg"
    images = [load_image(args.root, name) for name in args.image.split(",") if name]
    if not images:
        parser.error("give --image")
    settles: list[Optional[float]] = [float(v) for v in args.wait_settle.split(",")] if args.wait_settle else [None]
    sigterm_interrupts()
    load_before = load_average()
    with LibvirtClient.open(args.uri) as client:
        # One variant per image and wait_settle, each with its own baselines in the same interleaved runs.
        benches = [Bench(client, args, image, settle) for image in images for settle in settles]
        ours: dict[str, list[PodSample]] = {b.label: [] for b in benches}
        base: dict[str, list[Sample]] = {b.label: [] for b in benches}
        profiled: dict[str, list[PodSample]] = {b.label: [] for b in benches}
        try:
            for bench in benches[:: len(settles)]:
                print(f"warm-up {bench.image.name}: one pod create + remove (image cache), not counted", flush=True)
                bench.run_ours()
            for run in range(args.runs):
                for bench in benches:
                    name = bench.label
                    runners: list[Callable[[], None]] = [
                        lambda b=bench, n=name: ours[n].append(b.run_ours()),  # type: ignore[misc]
                        lambda b=bench, n=name: base[n].append(b.run_baseline()),  # type: ignore[misc]
                    ]
                    # Alternate who goes first so that drift in host load hits both sides alike.
                    for runner in runners if run % 2 == 0 else runners[::-1]:
                        runner()
                    o, b = ours[name][-1], base[name][-1]
                    print(
                        f"{name} run {run + 1}/{args.runs}: ours agent {o.timings.get('agent_ready', 0):.2f}s running {o.wall:.2f}s "
                        f"kernel init {kernel_init(o) or float('nan'):.2f}s, baseline ping {b.ping:.2f}s crun {b.exec:.2f}s; load {load_average()}",
                        flush=True,
                    )
            for run in range(args.kernel_log):
                for bench in benches:
                    profiled[bench.label].append(bench.run_ours(KERNEL_LOG_ARGS))
                    print(f"{bench.label} kernel-log run {run + 1}/{args.kernel_log}: running {profiled[bench.label][-1].wall:.2f}s", flush=True)
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            for bench in benches:
                bench.cleanup()
    for bench in benches:
        if len(benches) > 1:
            print(f"\n===== {bench.label} (kernel {bench.image.kernel_version}) =====")
        print_summary(ours[bench.label], base[bench.label], load_before)
        print_breakdown(ours[bench.label])
        print_kernel(profiled[bench.label])
    if len(images) > 1:
        print_images([(b.label, ours[b.label]) for b in benches])
        print(f"load average now {load_average()}")
    if len(settles) > 1:
        print_settles([(b.label, ours[b.label], base[b.label]) for b in benches])
        print(f"load average now {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            dump = {
                name: {"ours": [vars(s) for s in ours[name]], "baseline": [vars(s) for s in base[name]], "kernel_log": [vars(s) for s in profiled[name]]}
                for name in ours
            }
            json.dump(dump if len(benches) > 1 else dump[benches[0].label], handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
