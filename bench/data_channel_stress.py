# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stress of the data channel: hundreds of mixed-size copies, interleaved with execs, from two connections at once.

One pod ``bench-dcs-<hex>`` (busybox, ``sleep 3600``) is created and removed at the end. Two
processes (two libvirt connections, two Pushers: what two Ansible connections to one pod are) each
copy ``--copies`` files of mixed sizes (256 KiB to 16 MiB, random content) into the container
through the data channel, as the connection plugin does (through the nosymfollow view), run a
``crun exec`` every third copy, and check every file's sha256 in the container. A copy that finds
both ports busy goes through the agent (counted as ``agent``); a failed copy is counted and its
message printed. The figure to look at is ``failed``: it must be 0.

``--reproduce`` first runs the old order (the reader started before the host connects, with a
delay, and the old reader that takes end-of-file for the end of the data) a few times: it shows
the "0+0 records in ... did not end with its trailer" failure of issue 13.

    flock /tmp/hyper-integration.lock .venv/bin/python bench/data_channel_stress.py --copies 150 --reproduce
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import random
import secrets
import sys
import time
from typing import Any

from _common import PREFIX, BenchPod, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import data_channel as dc
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import container_rootfs, run_in_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import ContainerFiles
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import running_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient

POD_PREFIX = PREFIX + "dcs-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"
CONTAINER = "app"
SIZES = (256 * 1024, 300 * 1024 + 7, 1 << 20, 3 * (1 << 20) + 11, 8 << 20, 16 << 20)
# The reader of main before issue 13's fix: dd once, end-of-file taken for the end of the data.
OLD_SCRIPT = """set -u
port=$1 tmp=$2 count=$3 trailer=$4 size=$5 mode=$6 target=$7
fail() { rm -f "$tmp"; echo "$1" >&2; exit 3; }
dd if="$port" of="$tmp" bs=262144 count="$count" iflag=fullblock,count_bytes || fail "reading the data channel into $tmp failed"
[ "$(tail -c 32 "$tmp")" = "$trailer" ] || fail "the data did not end with its trailer (bytes lost or stale on the channel)"
truncate -s "$size" "$tmp" || fail "truncate $tmp failed"
mv -f "$tmp" "$target" || fail "rename $tmp to $target failed"
"""


def connect(uri: str, pod: str) -> tuple[LibvirtClient, GuestAgent, dc.Pusher]:
    client = LibvirtClient.open(uri)
    found = running_pod(client, pod)
    agent = GuestAgent(LibvirtAgentTransport(found.dom, found.current.vm_id))
    channels = dc.usable_channels(dc.data_channels(client.xml_desc(found.dom)))
    if not channels:
        raise RuntimeError("no usable data channel (run as root on the hyper host)")
    return client, agent, dc.Pusher(agent, channels, str(found.dom.UUIDString()))


def worker(uri: str, pod: str, index: int, copies: int, seed: int, queue: Any) -> None:
    rng = random.Random(seed)
    client, agent, pusher = connect(uri, pod)
    files = ContainerFiles(agent, CONTAINER)
    root = container_rootfs(CONTAINER)
    counts = {"channel": 0, "agent": 0, "failed": 0, "execs": 0, "bytes": 0}
    messages: list[str] = []
    start = time.monotonic()
    try:
        for number in range(copies):
            size = rng.choice(SIZES)
            data = rng.randbytes(size)
            target = f"tmp/w{index}-{number % 2}.bin"
            try:
                pushed = pusher.push(io.BytesIO(data), size, target, 0o644, 120.0, root=root)
                if pushed is None:
                    files.write(target, data, 0o644)  # both ports busy: the agent, as the connection does
                    counts["agent"] += 1
                else:
                    counts["channel"] += 1
                # The guest's own sha256sum (the test image has none) of the container's file.
                check = agent.exec(["sha256sum", f"{root}/{target}"], timeout=60)
                if check.stdout.split()[:1] != [hashlib.sha256(data).hexdigest().encode()]:
                    raise RuntimeError(f"sha256 of /{target} differs: {check.stdout[:80]!r} {check.stderr[:200]!r}")
                counts["bytes"] += size
            except (HyperError, RuntimeError) as err:
                counts["failed"] += 1
                messages.append(f"copy {number} ({size} bytes): {err}")
            if number % 3 == 0:
                result = run_in_container(agent, CONTAINER, ["true"], timeout=60)
                counts["execs"] += 1
                if result.rc != 0:
                    counts["failed"] += 1
                    messages.append(f"exec after copy {number}: rc {result.rc}")
    finally:
        client.close()
    queue.put((index, counts, messages, time.monotonic() - start))


def reproduce(uri: str, pod: str, times: int) -> tuple[int, list[str]]:
    """The old order: reader first, host connects 1 s later; the old reader. Returns the failures."""
    client, agent, pusher = connect(uri, pod)
    failures: list[str] = []
    try:
        channel = pusher.channels[0]
        for _attempt in range(times):
            data = os.urandom(1 << 20)
            trailer = secrets.token_hex(16)
            target = container_rootfs(CONTAINER) + "/tmp/old.bin"
            argv = ["/bin/sh", "-c", OLD_SCRIPT, "old-push", channel.guest_device, target + ".tmp", str(len(data) + 32), trailer, str(len(data)), "", target]
            pid = agent.spawn(argv)
            time.sleep(1.0)  # the host's connection reaches the guest after the reader's first read
            sock = dc._connect_unix(channel.path)
            sent = ""
            try:
                sock.settimeout(5)
                try:
                    sock.sendall(data + trailer.encode())
                except OSError as err:
                    sent = f" (send: {err})"
                result = agent.wait(pid, 30)
            finally:
                sock.close()
            if result.rc != 0:
                failures.append(result.stderr.decode("utf-8", "replace").strip().replace("\n", " | ") + sent)
    finally:
        client.close()
    return len(failures), failures


def step_cost(uri: str, pod: str, runs: int) -> None:
    """The guest step's price: a 4 KiB write and read of a container file, ContainerFiles against the agent's file calls."""
    client, agent, _pusher = connect(uri, pod)
    files = ContainerFiles(agent, CONTAINER)
    root = container_rootfs(CONTAINER)
    data = os.urandom(4096)
    timings: dict[str, list[float]] = {"agent write": [], "step write": [], "agent read": [], "step read": []}
    try:
        for _run in range(runs):
            for name, call in (
                ("agent write", lambda: agent.write_file(f"{root}/tmp/cost", data)),
                ("step write", lambda: files.write("/tmp/cost", data)),
                ("agent read", lambda: agent.read_file(f"{root}/tmp/cost")),
                ("step read", lambda: files.read("/tmp/cost")),
            ):
                start = time.monotonic()
                call()
                timings[name].append(time.monotonic() - start)
    finally:
        client.close()
    for op in ("write", "read"):
        base, ours = median(timings[f"agent {op}"]), median(timings[f"step {op}"])
        print(f"4 KiB {op}: agent file calls {base * 1000:.0f} ms, guest step {ours * 1000:.0f} ms (ratio {ours / base:.2f}), median of {runs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=150, help="copies per connection")
    parser.add_argument("--reproduce", action="store_true", help="first show the old failure")
    parser.add_argument("--step-cost", type=int, default=0, metavar="RUNS", help="first time the guest step against the agent's file calls")
    parser.add_argument("--image", default="default")
    parser.add_argument("--container-image", default=DEFAULT_IMAGE)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--memory", type=int, default=384)
    args = parser.parse_args()
    sigterm_interrupts()
    client = LibvirtClient.open(args.uri)
    container = {"name": CONTAINER, "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
    pod = BenchPod(client, POD_PREFIX, args.root, args.uri, {"memory": args.memory, "accelerator": "tcg", "guest_image": args.image, "containers": [container]})
    try:
        pod.start()
        print(f"pod {pod.name} up; load average {load_average()}")
        if args.step_cost:
            step_cost(args.uri, pod.name, args.step_cost)
        if args.reproduce:
            count, failures = reproduce(args.uri, pod.name, 3)
            print(f"old order and reader: {count} of 3 copies failed")
            for line in failures:
                print(f"  {line[:300]}")
        queue: Any = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=worker, args=(args.uri, pod.name, i, args.copies, 1000 + i, queue)) for i in range(2)]
        for proc in procs:
            proc.start()
        results = [queue.get(timeout=7200) for _proc in procs]
        for proc in procs:
            proc.join()
        total_failed = 0
        for index, counts, messages, seconds in sorted(results):
            total_failed += counts["failed"]
            mib = counts["bytes"] / (1 << 20)
            print(
                f"connection {index}: {counts['channel']} over the channel, {counts['agent']} through the agent (ports busy), "
                f"{counts['execs']} execs, failed {counts['failed']}; {mib:.0f} MiB in {seconds:.0f} s ({mib / seconds:.1f} MiB/s with checks)"
            )
            for line in messages[:10]:
                print(f"  {line[:300]}")
        print(f"failed: {total_failed}; load average {load_average()}")
        return 1 if total_failed else 0
    finally:
        pod.cleanup()
        client.close()


if __name__ == "__main__":
    sys.exit(main())
