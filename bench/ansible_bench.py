# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ansible tasks through the hyper connection against community.libvirt's libvirt_qemu, on one VM.

One pod ``bench-ans-<hex>`` (one Debian container ``app`` with python3, ``sleep 3600``) is created
with ``ensure_pod`` and removed at the end, also on Ctrl-C and SIGTERM. Two inventory hosts reach
the same VM:

- ``ours``: ``hyper.pods.hyper``, host ``<pod>/app``, pipelining on (the default a user would set;
  modules run in the container through ``crun exec``);
- ``theirs``: ``community.libvirt.libvirt_qemu``, host ``<vm>``. It runs commands in the guest's
  own root, which has no Python, so its interpreter is a guest script that chroots into the same
  container's root filesystem and runs the same python3; its remote_tmp is a directory bind-mounted
  at the same path inside that root, so the module files it copies are found there. It has no
  pipelining, so every module is copied, made executable, run and removed. No namespaces are
  entered on its side (cheaper than ``crun exec``), so the comparison favours it.

The playbook has three looped tasks: ``command: true``, ``copy`` of a 1 MiB file, and ``copy`` of a
16 MiB file (each item to a new path, so every item transfers). The hosts run alternately (one
``ansible-playbook --limit`` per host and run, forks 1); a callback records each item's time.
Medians and ratios (ours / theirs) are printed; the goals are ``command`` ≤ 1.0 and ``copy`` 1 MiB
≤ 0.8. Both interpreters are wrappers that log each python3 run in the guest; each item's time minus
its modules' runs is the connection's own overhead, printed per task with its ratio (goal ≤ 0.3).

community.libvirt comes from the ``ansible`` package on PyPI: ``make bench-deps`` puts it in
.build/bench/collections.

    .venv/bin/python bench/ansible_bench.py --runs 3 --items 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Optional

from _common import HERE, PREFIX, REPO, BenchPod, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import container_rootfs
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient

POD_PREFIX = PREFIX + "ans-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:debian-python"
CONTAINER = "app"
GUEST_PYTHON = "/run/hyper/bench-python"
GUEST_TMP = "/benchtmp"
# Both interpreters are wrappers that log each python3 run's start and end (guest uptime, 10 ms
# steps, read by the shell without a fork): the module's run in the guest, which both sides pay.
OURS_PYTHON = "/usr/local/bin/bench-python"
THEIR_TIMES = "/run/hyper/bench-times"
OUR_TIMES = "/tmp/bench-times"
WRAPPER = """#!/bin/sh
read -r start _ </proc/uptime
{python} "$@"
rc=$?
read -r end _ </proc/uptime
echo "$start $end" >>{times}
exit $rc
"""
TASKS = ("command true", "copy 1 MiB", "copy 16 MiB")
SIZES = {"small.bin": 1 << 20, "big.bin": 16 << 20}

PLAYBOOK = """---
- name: Benchmark tasks
  hosts: all
  gather_facts: false
  tasks:
    - name: command true
      ansible.builtin.command: "true"
      changed_when: false
      loop: "{{ range(items | int) | list }}"
    - name: copy 1 MiB
      ansible.builtin.copy:
        src: "{{ blobs }}/small.bin"
        dest: "/tmp/bench-small-{{ item }}.bin"
        mode: "0644"
      loop: "{{ range(items | int) | list }}"
    - name: copy 16 MiB
      ansible.builtin.copy:
        src: "{{ blobs }}/big.bin"
        dest: "/tmp/bench-big-{{ item }}.bin"
        mode: "0644"
      loop: "{{ range(2) | list }}"
    - name: clean up (not timed)
      ansible.builtin.command:
        argv: [rm, -rf, /tmp/bench-small-0.bin, /tmp/bench-small-1.bin, /tmp/bench-small-2.bin, /tmp/bench-small-3.bin,
               /tmp/bench-small-4.bin, /tmp/bench-small-5.bin, /tmp/bench-small-6.bin, /tmp/bench-small-7.bin,
               /tmp/bench-small-8.bin, /tmp/bench-small-9.bin, /tmp/bench-big-0.bin, /tmp/bench-big-1.bin]
      changed_when: true
"""


def make_pod(client: LibvirtClient, args: argparse.Namespace) -> BenchPod:
    container = {"name": CONTAINER, "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
    spec = {"memory": args.memory, "accelerator": "tcg", "guest_image": args.image, "containers": [container]}
    return BenchPod(client, POD_PREFIX, args.root, args.uri, spec)


def start_pod(bench: BenchPod) -> tuple[str, GuestAgent]:
    """Start the pod and prepare libvirt_qemu's side in the guest; the VM id and an agent."""
    dom, vm_id = bench.start()
    agent = GuestAgent(LibvirtAgentTransport(dom, vm_id))
    rootfs = container_rootfs(CONTAINER)
    # libvirt_qemu's side: python3 of the container through chroot, its temporary files visible at the same path.
    agent.write_file(GUEST_PYTHON, WRAPPER.format(python=f"chroot {rootfs} /usr/bin/python3", times=THEIR_TIMES).encode(), mode=0o755)
    agent.exec(["mkdir", "-p", rootfs + os.path.dirname(OURS_PYTHON)])
    agent.write_file(rootfs + OURS_PYTHON, WRAPPER.format(python="/usr/bin/python3", times=OUR_TIMES).encode(), mode=0o755)
    for argv in (["mkdir", "-p", GUEST_TMP, rootfs + GUEST_TMP], ["mount", "--bind", GUEST_TMP, rootfs + GUEST_TMP]):
        result = agent.exec(argv)
        if result.rc != 0:
            raise RuntimeError(f"{argv}: {result.stderr!r}")
    return vm_id, agent


def times_path(host: str) -> str:
    return THEIR_TIMES if host == "theirs" else container_rootfs(CONTAINER) + OUR_TIMES


def module_runs(agent: GuestAgent, host: str) -> list[float]:
    """The seconds of each python3 run of the last playbook run, in order (then the log is removed)."""
    path = times_path(host)
    runs = []
    for line in agent.read_file(path).decode("ascii").splitlines():
        start, end = line.split()
        runs.append(float(end) - float(start))
    agent.exec(["rm", "-f", path])
    return runs


def overheads(records: list[dict[str, Any]], runs: list[float], items: int) -> dict[str, list[float]]:
    """Each item's time minus its modules' runs in the guest, by task. Every copy item runs the same
    number of modules (stat, copy); the cleanup task runs one, the command items one each."""
    per_copy, rest = divmod(len(runs) - items - 1, items + 2)
    timed = [r for r in records if r["task"] in TASKS and r["ok"]]
    if rest or per_copy < 1 or len(timed) != 2 * items + 2:
        print(f"warning: {len(runs)} module runs for {len(timed)} items: cannot attribute them; no overhead figures this run", file=sys.stderr)
        return {}
    found: dict[str, list[float]] = {}
    at = 0
    for record in timed:
        count = 1 if record["task"] == "command true" else per_copy
        found.setdefault(record["task"], []).append(record["seconds"] - sum(runs[at : at + count]))
        at += count
    return found


def inventory(pod: str, vm_id: str, uri: str) -> dict[str, Any]:
    return {
        "all": {
            "hosts": {
                "ours": {
                    "ansible_connection": "hyper.pods.hyper",
                    "ansible_host": f"{pod}/{CONTAINER}",
                    "ansible_hyper_uri": uri,
                    "ansible_pipelining": True,
                    "ansible_python_interpreter": OURS_PYTHON,
                },
                "theirs": {
                    "ansible_connection": "community.libvirt.libvirt_qemu",
                    "ansible_host": vm_id,
                    "ansible_libvirt_uri": uri,
                    "ansible_python_interpreter": GUEST_PYTHON,
                    "ansible_remote_tmp": GUEST_TMP,
                },
            }
        }
    }


def run_playbook(work: str, host: str, items: int, libvirt_collections: str) -> list[dict[str, Any]]:
    timing = os.path.join(work, f"timing-{host}.jsonl")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(timing)
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(REPO, ".build", "collections"), libvirt_collections]),
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="bench_timing",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        ANSIBLE_FORKS="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        BENCH_TIMING_FILE=timing,
    )
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    argv = [playbook, "-i", os.path.join(work, "inventory.json"), "--limit", host, "-e", f"items={items}", "-e", f"blobs={work}"]
    argv.append(os.path.join(work, "play.yml"))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook for {host} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    with open(timing, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="playbook runs per host, alternating")
    parser.add_argument("--items", type=int, default=5, help="loop items of the command and 1 MiB copy tasks (at most 10)")
    parser.add_argument("--container-image", default=DEFAULT_IMAGE, help="an image with /usr/bin/python3")
    parser.add_argument("--image", default="default", help="guest image name under <root>/images/")
    parser.add_argument("--libvirt-collections", default=os.path.join(REPO, ".build", "bench", "collections"))
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--memory", type=int, default=512, help="MiB")
    args = parser.parse_args(argv)
    args.items = max(1, min(args.items, 10))
    if not os.path.isfile(os.path.join(args.libvirt_collections, "ansible_collections", "community", "libvirt", "plugins", "connection", "libvirt_qemu.py")):
        print(f"community.libvirt is not in {args.libvirt_collections}: run `make bench-deps` first", file=sys.stderr)
        return 2
    sigterm_interrupts()
    load_before = load_average()
    times: dict[tuple[str, str], list[float]] = {}
    extra: dict[tuple[str, str], list[float]] = {}
    with LibvirtClient.open(args.uri) as client, tempfile.TemporaryDirectory(prefix="hyper-ansible-bench-") as work:
        for name, size in SIZES.items():
            with open(os.path.join(work, name), "wb") as blob:
                blob.write(os.urandom(size))
        with open(os.path.join(work, "play.yml"), "w", encoding="utf-8") as play:
            play.write(PLAYBOOK)
        bench = make_pod(client, args)
        try:
            print(f"creating pod {bench.name}", flush=True)
            vm_id, agent = start_pod(bench)
            with open(os.path.join(work, "inventory.json"), "w", encoding="utf-8") as inv:
                json.dump(inventory(bench.name, vm_id, args.uri), inv)
            for run in range(args.runs):
                for host in ("ours", "theirs") if run % 2 == 0 else ("theirs", "ours"):
                    agent.exec(["rm", "-f", times_path(host)])
                    records = run_playbook(work, host, args.items, args.libvirt_collections)
                    for task, values in overheads(records, module_runs(agent, host), args.items).items():
                        extra.setdefault((task, host), []).extend(values)
                    for record in records:
                        if record["task"] in TASKS and record["ok"]:
                            times.setdefault((record["task"], host), []).append(record["seconds"])
                    summary = ", ".join(f"{t} {median(times.get((t, host), [0.0])):.2f} s" for t in TASKS)
                    print(f"run {run + 1}/{args.runs} {host}: {summary}", flush=True)
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            bench.cleanup()
    print(f"\nseconds per task item, median over {args.runs} runs (first item of each task included), forks 1")
    print(f"{'task':<14} {'hyper':>8} {'libvirt_qemu':>13} {'ratio':>6}")
    for task in TASKS:
        ours, theirs = median(times[(task, "ours")]), median(times[(task, "theirs")])
        print(f"{task:<14} {ours:>8.2f} {theirs:>13.2f} {ours / theirs:>6.2f}")
    if extra:
        print("\nconnection overhead per task item (item time minus its modules' run in the guest), median")
        print(f"{'task':<14} {'hyper':>8} {'libvirt_qemu':>13} {'ratio':>6}")
        for task in TASKS:
            if (task, "ours") in extra and (task, "theirs") in extra:
                ours, theirs = median(extra[(task, "ours")]), median(extra[(task, "theirs")])
                print(f"{task:<14} {ours:>8.2f} {theirs:>13.2f} {ours / theirs:>6.2f}")
        all_ours = median([v for (t, h), vs in extra.items() if h == "ours" for v in vs])
        all_theirs = median([v for (t, h), vs in extra.items() if h == "theirs" for v in vs])
        print(f"{'all items':<14} {all_ours:>8.2f} {all_theirs:>13.2f} {all_ours / all_theirs:>6.2f}   (goal ≤ 0.3)")
    big_ours, big_theirs = median(times[("copy 16 MiB", "ours")]), median(times[("copy 16 MiB", "theirs")])
    print(f"copy 16 MiB throughput: hyper {16 / big_ours:.1f} MiB/s, libvirt_qemu {16 / big_theirs:.1f} MiB/s ({big_theirs / big_ours:.1f}x)")
    print(f"\nload average before {load_before}, after {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
