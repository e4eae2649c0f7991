# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Exec and file push benchmark on one running pod, ours against raw ``qemuAgentCommand`` calls.

One pod ``bench-exec-<hex>`` (one busybox container ``app``, ``sleep 3600``) is created with
``ensure_pod`` and removed at the end, also on Ctrl-C and SIGTERM. On it, interleaved:

1. exec round trip (``--runs``, default 15): ours = ``run_in_container(agent, "app", ["true"])``
   (the library call behind hyper_exec), through the container's exec helper (the fast path) with
   ``large_output`` False and True, and through crun exec (``exec_helper=False``, large_output);
   raw = one guest-exec with capture-output and a guest-exec-status loop with a fixed 10 ms sleep,
   of ``/bin/true`` in the guest's root (the baseline of the ratios: the cost of a bare guest-exec)
   and of ``/usr/bin/crun exec app true``. Goal: the fast path ÷ raw ``/bin/true`` ≤ 1.5.
2. file push of an 8 MiB random file to /run/hyper/bench.bin (``--push-runs``, default 3): ours =
   the pod's data channel (``data_channel.Pusher``, what the hyper connection's put_file uses for
   files of 256 KiB and more) and ``GuestAgent.write_file`` (default chunk, its fallback); raw =
   what community.libvirt's libvirt_qemu connection does in put_file: guest-file-open,
   guest-file-write in 64 KiB chunks, guest-file-close. The file is removed after each run.

    PYTHONPATH=.build/collections .venv/bin/python bench/exec_bench.py
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
from typing import Any, Callable, Optional

from _common import PREFIX, BenchPod, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import Pusher, data_channels, usable_channels
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import run_in_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient, import_libvirt

POD_PREFIX = PREFIX + "exec-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"
CONTAINER = "app"
RAW_CRUN = "/usr/bin/crun"
ROOT_TRUE = ("/bin/true",)
HELPER_WAIT = 30.0
RAW_SLEEP = 0.01
RAW_CALL_TIMEOUT = 10
RAW_CHUNK = 64 * 1024
PUSH_PATH = "/run/hyper/bench.bin"
PUSH_SIZE = 8 * 1024 * 1024
MIB = 1024 * 1024


class Raw:
    """Bare ``libvirt_qemu.qemuAgentCommand`` calls on the pod's domain, as a hand-written script does them."""

    def __init__(self, uri: str, vm_id: str) -> None:
        libvirt, self.libvirt_qemu = import_libvirt()
        self.conn = libvirt.open(uri)
        self.dom = self.conn.lookupByName(vm_id)

    def agent(self, name: str, arguments: Optional[dict[str, Any]] = None) -> Any:
        request: dict[str, Any] = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        return json.loads(self.libvirt_qemu.qemuAgentCommand(self.dom, json.dumps(request), RAW_CALL_TIMEOUT, 0))["return"]

    def exec_true(self, argv: tuple[str, ...] = (RAW_CRUN, "exec", CONTAINER, "true")) -> float:
        start = time.monotonic()
        pid = self.agent("guest-exec", {"path": argv[0], "arg": list(argv[1:]), "capture-output": True})["pid"]
        while True:
            status = self.agent("guest-exec-status", {"pid": pid})
            if status["exited"]:
                break
            time.sleep(RAW_SLEEP)
        elapsed = time.monotonic() - start
        if status.get("exitcode") != 0:
            raise RuntimeError(f"raw {argv[0]} exited {status.get('exitcode')}: {base64.b64decode(status.get('err-data', ''))!r}")
        return elapsed

    def put_file(self, data: bytes) -> float:
        start = time.monotonic()
        handle = self.agent("guest-file-open", {"path": PUSH_PATH, "mode": "wb"})
        try:
            for offset in range(0, len(data), RAW_CHUNK):
                chunk = data[offset : offset + RAW_CHUNK]
                self.agent("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(chunk).decode("ascii")})
        finally:
            self.agent("guest-file-close", {"handle": handle})
        return time.monotonic() - start

    def close(self) -> None:
        self.conn.close()


def make_pod(client: LibvirtClient, args: argparse.Namespace) -> BenchPod:
    container = {"name": CONTAINER, "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
    spec = {"memory": args.memory, "accelerator": "tcg", "guest_image": args.image, "containers": [container]}
    return BenchPod(client, POD_PREFIX, args.root, args.uri, spec)


def start_pod(bench: BenchPod) -> tuple[GuestAgent, str, Pusher]:
    dom, vm_id = bench.start()
    agent = GuestAgent(LibvirtAgentTransport(dom, vm_id))
    channels = usable_channels(data_channels(bench.client.xml_desc(dom)))
    if not channels:
        raise RuntimeError(f"pod {bench.name} has no data channel this process can open (run as root on the hyper host)")
    return agent, vm_id, Pusher(agent, channels, str(dom.UUIDString()))


def ours_exec(agent: GuestAgent, large_output: bool, exec_helper: bool = True) -> float:
    start = time.monotonic()
    result = run_in_container(agent, CONTAINER, ["true"], large_output=large_output, exec_helper=exec_helper)
    elapsed = time.monotonic() - start
    if result.rc != 0:
        raise RuntimeError(f"run_in_container true (large_output={large_output}) rc {result.rc}: {result.stderr!r}")
    return elapsed


def wait_for_helper(agent: GuestAgent) -> None:
    """The first command starts the container's exec helper (and goes through crun exec); wait until it serves."""
    deadline = time.monotonic() + HELPER_WAIT
    while run_in_container(agent, CONTAINER, ["true"]).via != "helper":
        if time.monotonic() > deadline:
            raise RuntimeError(f"container {CONTAINER} has no exec helper after {HELPER_WAIT:g}s (a guest image without hyper-exec? --image)")
        time.sleep(0.1)


def ours_push(agent: GuestAgent, data: bytes) -> float:
    start = time.monotonic()
    agent.write_file(PUSH_PATH, data)
    return time.monotonic() - start


def channel_push(pusher: Pusher, data: bytes) -> float:
    start = time.monotonic()
    pusher.push(io.BytesIO(data), len(data), PUSH_PATH, 0o644, 60.0)
    return time.monotonic() - start


def check_pushed(agent: GuestAgent, data: bytes) -> None:
    """Untimed: the guest file has the size written; then it is removed."""
    result = agent.exec(["sh", "-c", f'wc -c <{PUSH_PATH}; rm -f "{PUSH_PATH}"'])
    size = int(result.stdout.decode("ascii", "replace").strip() or -1)
    if size != len(data):
        raise RuntimeError(f"{PUSH_PATH}: {size} bytes in the guest, {len(data)} written")


def interleave(run: int, pairs: list[Callable[[], None]]) -> None:
    for step in pairs if run % 2 == 0 else pairs[::-1]:
        step()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="exec round trips per side")
    parser.add_argument("--push-runs", type=int, default=3, help="8 MiB pushes per side")
    parser.add_argument("--image", default="default", help="guest image name under <root>/images/")
    parser.add_argument("--container-image", default=DEFAULT_IMAGE)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--memory", type=int, default=128, help="MiB")
    args = parser.parse_args(argv)
    if resolve_accelerator("auto", args.root) != "tcg":
        print("note: KVM is available; the pod runs with TCG anyway, like the other benchmarks", file=sys.stderr)
    sigterm_interrupts()
    load_before = load_average()
    exec_ours: list[float] = []
    exec_large: list[float] = []
    exec_raw: list[float] = []
    exec_crun: list[float] = []
    exec_root: list[float] = []
    push_ours: list[float] = []
    push_channel: list[float] = []
    push_raw: list[float] = []
    data = os.urandom(PUSH_SIZE)
    with LibvirtClient.open(args.uri) as client:
        bench = make_pod(client, args)
        raw: Optional[Raw] = None
        try:
            print(f"creating pod {bench.name}", flush=True)
            agent, vm_id, pusher = start_pod(bench)
            raw = Raw(args.uri, vm_id)
            rw = raw
            wait_for_helper(agent)
            # Warm-up, not counted: page cache of crun and the container's rootfs.
            ours_exec(agent, False)
            ours_exec(agent, True, exec_helper=False)
            raw.exec_true()
            raw.exec_true(ROOT_TRUE)
            exec_steps: list[Callable[[], None]] = [
                lambda: exec_ours.append(ours_exec(agent, False)),
                lambda: exec_root.append(rw.exec_true(ROOT_TRUE)),
                lambda: exec_large.append(ours_exec(agent, True)),
                lambda: exec_crun.append(ours_exec(agent, True, exec_helper=False)),
                lambda: exec_raw.append(rw.exec_true()),
            ]
            for run in range(args.runs):
                interleave(run, exec_steps)
                ms = (exec_ours[-1] * 1000, exec_large[-1] * 1000, exec_root[-1] * 1000, exec_crun[-1] * 1000, exec_raw[-1] * 1000)
                print(
                    f"exec {run + 1}/{args.runs}: helper {ms[0]:.0f} ms, helper large_output {ms[1]:.0f} ms, raw /bin/true {ms[2]:.0f} ms, "
                    f"crun exec {ms[3]:.0f} ms, raw crun exec {ms[4]:.0f} ms",
                    flush=True,
                )

            def push_ours_step() -> None:
                push_ours.append(ours_push(agent, data))
                check_pushed(agent, data)

            def push_channel_step() -> None:
                push_channel.append(channel_push(pusher, data))
                check_pushed(agent, data)

            def push_raw_step() -> None:
                push_raw.append(rw.put_file(data))
                check_pushed(agent, data)

            for run in range(args.push_runs):
                interleave(run, [push_channel_step, push_ours_step, push_raw_step])
                print(
                    f"push {run + 1}/{args.push_runs}: data channel {push_channel[-1]:.2f} s, agent {push_ours[-1]:.2f} s, raw 64 KiB {push_raw[-1]:.2f} s",
                    flush=True,
                )
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            if raw is not None:
                raw.close()
            bench.cleanup()
    ours_m, large_m, raw_m = median(exec_ours), median(exec_large), median(exec_raw)
    root_m, crun_m = median(exec_root), median(exec_crun)
    print(f"\nexec round trip of `true`, median of {args.runs} runs each, interleaved; ratio to a bare guest-exec of /bin/true")
    print(f"{'':<52} {'median ms':>9} {'ratio':>6}")
    print(f"{'raw: guest-exec /bin/true in the guest root, 10 ms poll':<52} {root_m * 1000:>9.1f} {1.0:>6.2f}")
    print(f"{'ours: exec helper, large_output=False':<52} {ours_m * 1000:>9.1f} {ours_m / root_m:>6.2f}")
    print(f"{'ours: exec helper, large_output=True (hyper_exec)':<52} {large_m * 1000:>9.1f} {large_m / root_m:>6.2f}")
    print(f"{'ours: crun exec (exec_helper=False), large_output':<52} {crun_m * 1000:>9.1f} {crun_m / root_m:>6.2f}")
    print(f"{'raw: guest-exec crun exec, 10 ms poll':<52} {raw_m * 1000:>9.1f} {raw_m / root_m:>6.2f}")
    print(
        f"goal: exec helper ÷ raw /bin/true ≤ 1.5: {ours_m / root_m:.2f} (large_output {large_m / root_m:.2f}); crun exec ÷ exec helper {crun_m / large_m:.1f}x"
    )
    # On a shared host the median moves with the other load; the fastest run of each is what the path itself costs.
    root_f, ours_f, large_f, crun_f = min(exec_root), min(exec_ours), min(exec_large), min(exec_crun)
    print(
        f"fastest runs: raw /bin/true {root_f * 1000:.1f} ms, exec helper {ours_f * 1000:.1f} ms ({ours_f / root_f:.2f}), "
        f"large_output {large_f * 1000:.1f} ms ({large_f / root_f:.2f}), crun exec {crun_f * 1000:.1f} ms ({crun_f / root_f:.2f})"
    )
    if not args.push_runs:
        print(f"\nload average before {load_before}, after {load_average()}")
        return 0
    push_o, push_r, push_c = median(push_ours), median(push_raw), median(push_channel)
    size_mib = PUSH_SIZE / MIB
    print(f"\nfile push of {size_mib:.0f} MiB to {PUSH_PATH}, median of {args.push_runs} runs each, interleaved")
    print(f"{'':<46} {'median s':>9} {'MiB/s':>7}")
    print(f"{'raw: guest-file-write 64 KiB chunks':<46} {push_r:>9.2f} {size_mib / push_r:>7.2f}")
    print(f"{'ours: GuestAgent.write_file (default chunk)':<46} {push_o:>9.2f} {size_mib / push_o:>7.2f}")
    print(f"{'ours: data channel (hyper connection put_file)':<46} {push_c:>9.2f} {size_mib / push_c:>7.2f}")
    print(f"throughput ratio agent write_file / raw = {push_r / push_o:.2f}")
    print(f"throughput ratio data channel / raw = {push_r / push_c:.2f}")
    print(f"\nload average before {load_before}, after {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
