# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a remote libvirt URI costs the hyper connection: exec and file copies, qemu:///system against qemu+ssh://.

One pod ``bench-remote-<hex>`` (one busybox container ``app``) is created with ``ensure_pod`` on
this host and removed at the end, also on Ctrl-C and SIGTERM. The same pod is then reached as the
connection plugin reaches it, through two libvirt URIs:

- local: ``qemu:///system`` (the baseline): commands through the agent, files of 256 KiB and more
  over the pod's data channel (the connection's put_file);
- remote: ``qemu+ssh://root@localhost:PORT/system?command=WRAPPER``, through an sshd this script
  starts on 127.0.0.1 (its own host key, client key and known_hosts in a temporary directory;
  stopped and removed at the end). The data channel is a unix socket on the host, which a remote
  controller cannot open, so files go through the agent (``GuestAgent.write_file``), as the
  connection does then. Local agent writes are measured too, to split the cost of the fallback
  from the cost of the SSH hop.

Controller and "remote" host are one machine here: the SSH hop costs encryption and the extra
process, not network latency. Interleaved runs; medians; ratios against the local figure.

    PYTHONPATH=.build/collections .venv/bin/python bench/remote_bench.py [--port 2222]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterator, Optional

from _common import PREFIX, BenchPod, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import Pusher, data_channels, is_local_uri, usable_channels
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import run_in_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import running_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient

POD_PREFIX = PREFIX + "remote-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"
CONTAINER = "app"
PUSH_PATH = "/run/hyper/bench-remote.bin"
MIB = 1024 * 1024


@contextlib.contextmanager
def test_sshd(port: int) -> Iterator[str]:
    """An sshd of this run on 127.0.0.1:port; yields the qemu+ssh URI that reaches this host through it."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"127.0.0.1:{port} is taken; pick another --port")
    work = tempfile.mkdtemp(prefix="hyper-remote-bench-")
    pid: Optional[int] = None
    created_privsep = not os.path.isdir("/run/sshd")
    try:
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(work, key)], check=True)
        with open(os.path.join(work, "host_key.pub"), encoding="ascii") as handle:
            host_key = handle.read()
        shutil.copy(os.path.join(work, "client_key.pub"), os.path.join(work, "authorized_keys"))
        files = {
            "known_hosts": f"[localhost]:{port} {host_key}",
            "sshd_config": (
                f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {work}/host_key\nPidFile {work}/sshd.pid\n"
                f"AuthorizedKeysFile {work}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            ),
            "ssh_config": (
                f"Host localhost\n  User root\n  Port {port}\n  IdentityFile {work}/client_key\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {work}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
            ),
            "ssh": f'#!/bin/sh\nexec ssh -F {work}/ssh_config "$@"\n',
        }
        for name, content in files.items():
            path = os.path.join(work, name)
            with open(path, "w", encoding="ascii") as handle:
                handle.write(content)
            os.chmod(path, 0o700 if name == "ssh" else 0o600)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        subprocess.run(["/usr/sbin/sshd", "-f", f"{work}/sshd_config", "-E", f"{work}/sshd.log"], check=True)
        for _attempt in range(100):
            if os.path.exists(f"{work}/sshd.pid") and os.path.getsize(f"{work}/sshd.pid") > 0:
                break
            time.sleep(0.05)
        yield f"qemu+ssh://root@localhost:{port}/system?command={work}/ssh"
    finally:
        # sshd writes its pid file once it listens; a daemon that started is stopped by it, whatever failed.
        with contextlib.suppress(OSError, ValueError), open(f"{work}/sshd.pid", encoding="ascii") as handle:
            pid = int(handle.read().strip())
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if created_privsep:
            with contextlib.suppress(OSError):
                os.rmdir("/run/sshd")
        shutil.rmtree(work, ignore_errors=True)


class Reach:
    """The pod as the connection plugin reaches it through one URI: agent, and data channel where it can."""

    def __init__(self, uri: str, pod: str) -> None:
        self.uri = uri
        self.client = LibvirtClient.open(uri)
        found = running_pod(self.client, pod)
        dom, vm_id = found.dom, found.current.vm_id
        self.agent = GuestAgent(LibvirtAgentTransport(dom, vm_id), name=f"pod {pod} via {uri.split('?')[0]}")
        self.pusher: Optional[Pusher] = None
        if is_local_uri(uri):
            channels = usable_channels(data_channels(self.client.xml_desc(dom)))
            if channels:
                self.pusher = Pusher(self.agent, channels, str(dom.UUIDString()))

    def exec_true(self) -> float:
        start = time.monotonic()
        result = run_in_container(self.agent, CONTAINER, ["true"], large_output=True)
        elapsed = time.monotonic() - start
        if result.rc != 0:
            raise RuntimeError(f"{self.uri}: true exited {result.rc}: {result.stderr!r}")
        return elapsed

    def push(self, data: bytes, channel: bool) -> float:
        start = time.monotonic()
        if channel:
            if self.pusher is None or self.pusher.push(io.BytesIO(data), len(data), PUSH_PATH, 0o644, 120.0) is None:
                raise RuntimeError(f"{self.uri}: no data channel")
        else:
            self.agent.write_file(PUSH_PATH, data)
        elapsed = time.monotonic() - start
        self.check(len(data))
        return elapsed

    def check(self, size: int) -> None:
        result = self.agent.exec(["sh", "-c", f'wc -c <{PUSH_PATH}; rm -f "{PUSH_PATH}"'])
        found = int(result.stdout.decode("ascii", "replace").strip() or -1)
        if found != size:
            raise RuntimeError(f"{self.uri}: {PUSH_PATH} has {found} bytes, {size} written")

    def close(self) -> None:
        self.client.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=2222, help="port of the benchmark's own sshd on 127.0.0.1")
    parser.add_argument("--runs", type=int, default=9, help="exec round trips per URI")
    parser.add_argument("--push-runs", type=int, default=3, help="file copies per way")
    parser.add_argument("--push-mib", type=int, default=4, help="size of the copied file in MiB")
    parser.add_argument("--image", default="default", help="guest image")
    parser.add_argument("--container-image", default=DEFAULT_IMAGE)
    parser.add_argument("--memory", type=int, default=256)
    parser.add_argument("--root", default="/var/lib/hyper")
    args = parser.parse_args(argv)
    sigterm_interrupts()
    print(f"load average before: {load_average()}", flush=True)
    client = LibvirtClient.open("qemu:///system")
    container = {"name": CONTAINER, "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
    bench = BenchPod(
        client, POD_PREFIX, args.root, "qemu:///system", {"memory": args.memory, "accelerator": "tcg", "guest_image": args.image, "containers": [container]}
    )
    data = os.urandom(args.push_mib * MIB)
    times: dict[str, list[float]] = {key: [] for key in ("exec_local", "exec_remote", "push_channel", "push_agent_local", "push_agent_remote")}
    try:
        print(f"creating pod {bench.name}", flush=True)
        bench.start()
        with test_sshd(args.port) as remote_uri:
            local, remote = Reach("qemu:///system", bench.name), Reach(remote_uri, bench.name)
            try:
                steps: list[tuple[str, Callable[[], float]]] = [("exec_local", local.exec_true), ("exec_remote", remote.exec_true)]
                for run in range(args.runs):
                    for key, step in steps if run % 2 == 0 else steps[::-1]:
                        times[key].append(step())
                pushes: list[tuple[str, Callable[[], float]]] = [
                    ("push_channel", lambda: local.push(data, channel=True)),
                    ("push_agent_local", lambda: local.push(data, channel=False)),
                    ("push_agent_remote", lambda: remote.push(data, channel=False)),
                ]
                for run in range(args.push_runs):
                    for key, step in pushes if run % 2 == 0 else pushes[::-1]:
                        times[key].append(step())
                    print(f"push {run + 1}/{args.push_runs} done", flush=True)
            finally:
                local.close()
                remote.close()
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bench.cleanup()
        client.close()
    m = {key: median(values) for key, values in times.items()}
    print(f"\nexec round trip of `true` in container {CONTAINER} (run_in_container, large_output), median of {args.runs} runs each, interleaved")
    print(f"{'':<52} {'median ms':>9} {'ratio':>6}")
    print(f"{'local: qemu:///system':<52} {m['exec_local'] * 1000:>9.1f} {1.0:>6.2f}")
    print(f"{'remote: qemu+ssh://root@localhost (this host)':<52} {m['exec_remote'] * 1000:>9.1f} {m['exec_remote'] / m['exec_local']:>6.2f}")
    print(f"\nfile copy of {args.push_mib} MiB to {PUSH_PATH}, median of {args.push_runs} runs each, interleaved")
    print(f"{'':<52} {'median s':>9} {'MiB/s':>7} {'ratio':>6}")
    for key, label in (
        ("push_channel", "local: data channel (the connection's way)"),
        ("push_agent_local", "local: guest agent writes"),
        ("push_agent_remote", "remote: guest agent writes (the only way)"),
    ):
        print(f"{label:<52} {m[key]:>9.2f} {args.push_mib / m[key]:>7.2f} {m[key] / m['push_channel']:>6.2f}")
    print(f"\nload average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
