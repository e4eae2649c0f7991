# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Many pods on one host at once: N pods started with ``async``/``poll: 0`` against the same N one after another.

For each N (default 1, 3, 6), one ``ansible-playbook`` run per way, alternating which goes first:

- sequential (the baseline): one ``hyper.pods.hyper_pod`` task looping over N pods, no async;
- async: the same task with ``async: 600`` and ``poll: 0``, then an ``async_status`` task that
  collects every job (``until: finished``, 1 s between polls, as docs/concurrency.md advises).

Timed by the bench_timing callback (bench/callback_plugins): the wall time of those tasks, from the
first task's start to the last item's end (Ansible's own start-up is outside it). Printed per N:
wall time, wall time per pod, the ratio async ÷ sequential, and from the module's ``timings`` the
median boot (VM start → containers running) and the median wait for a boot slot. Each pod is one
busybox container (``sleep 3600``), 128 MiB, from a local OCI layout; the host's boot slots are
whatever its host.json says (the host role's default: one per CPU).

    PYTHONPATH=.build/collections .venv/bin/python bench/async_start.py
    PYTHONPATH=.build/collections .venv/bin/python bench/async_start.py --counts 1 3 6 12 --runs 2

A warm-up pod (image cache, libvirt) comes first, not timed. Pods are named bench-async-*; the
playbook removes its pods in an ``always:`` block, and every pod of the run left after it (also on
Ctrl-C and SIGTERM) is removed here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from typing import Optional

from _common import HERE, PREFIX, REPO, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.boot_slots import load_boot_slot_settings
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.domain import discard_vm
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import list_pods
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient

POD_PREFIX = PREFIX + "async-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:busybox"
MODES = ("sequential", "async")
TIMED = {"sequential": ("start one after another",), "async": ("start at once", "collect")}

PLAYBOOK = """\
- name: Start N pods, one after another or at once
  hosts: localhost
  gather_facts: false
  vars:
    containers:
      - {name: main, image: "{{ image }}", command: [sleep, "3600"]}
  tasks:
    - name: The pods
      block:
        - name: start one after another
          hyper.pods.hyper_pod:
            name: "{{ prefix }}{{ item }}"
            memory: 128
            root: "{{ root }}"
            uri: "{{ uri }}"
            containers: "{{ containers }}"
          loop: "{{ range(n | int) | list }}"
          when: mode == 'sequential'
          register: sequential

        - name: start at once
          hyper.pods.hyper_pod:
            name: "{{ prefix }}{{ item }}"
            memory: 128
            root: "{{ root }}"
            uri: "{{ uri }}"
            containers: "{{ containers }}"
          loop: "{{ range(n | int) | list }}"
          when: mode == 'async'
          async: 600
          poll: 0
          register: jobs

        - name: collect
          ansible.builtin.async_status:
            jid: "{{ item.ansible_job_id }}"
          loop: "{{ jobs.results }}"
          when: mode == 'async'
          register: collected
          until: collected.finished
          retries: 1200
          delay: 1

        - name: write the timings
          ansible.builtin.copy:
            dest: "{{ out }}"
            content: "{{ (sequential.results if mode == 'sequential' else collected.results) | map(attribute='timings') | list | to_json }}"
            mode: "0600"
      always:
        - name: remove the pods
          hyper.pods.hyper_pod:
            name: "{{ prefix }}{{ item }}"
            root: "{{ root }}"
            uri: "{{ uri }}"
            state: absent
            stop_timeout: 0
          loop: "{{ range(n | int) | list }}"
          async: 600
          poll: 0
          register: removals

        - name: collect the removals
          ansible.builtin.async_status:
            jid: "{{ item.ansible_job_id }}"
          loop: "{{ removals.results }}"
          register: removed
          until: removed.finished
          retries: 1200
          delay: 1

        - name: forget the jobs
          ansible.builtin.async_status:
            jid: "{{ item.ansible_job_id }}"
            mode: cleanup
          loop: "{{ (jobs.results | default([]) | selectattr('ansible_job_id', 'defined') | list) + removals.results }}"
"""


def run_playbook(work: str, mode: str, count: int, prefix: str, args: argparse.Namespace) -> tuple[float, list[dict[str, float]]]:
    """One playbook run; the wall time of its timed tasks and each pod's module timings."""
    timing = os.path.join(work, f"timing-{mode}-{count}.jsonl")
    out = os.path.join(work, f"timings-{mode}-{count}.json")
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"),
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="bench_timing",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
        BENCH_TIMING_FILE=timing,
    )
    extra = {"n": count, "mode": mode, "prefix": prefix, "image": args.image, "root": args.root, "uri": args.uri, "out": out}
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    argv = [playbook, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(extra)]
    argv.append(os.path.join(work, "play.yml"))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # The failed items' lines (their messages), not the tail: the always: block's output ends the run.
        failed = [line[:2000] for line in done.stdout.splitlines() if line.startswith(("fatal:", "failed:")) or '"msg":' in line]
        summary = "\n".join(failed[-20:]) or done.stdout[-3000:]
        raise RuntimeError(f"ansible-playbook ({mode}, {count} pods) failed ({done.returncode}):\n{summary}\n{done.stderr[-2000:]}")
    with open(timing, encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    wall = sum(r["seconds"] for r in records if r["task"] in TIMED[mode] and r["ok"])
    with open(out, encoding="utf-8") as handle:
        timings: list[dict[str, float]] = json.load(handle)
    return wall, timings


def remove_leftovers(client: LibvirtClient, prefix: str, root: str, uri: str) -> None:
    """Every pod of this run still there (an interrupted playbook): removed, or its VM discarded."""
    for found in list_pods(client):
        name = str(found.current.spec.get("name"))
        if not name.startswith(prefix):
            continue
        try:
            ensure_pod({"name": name, "state": "absent", "root": root, "uri": uri, "stop_timeout": 0}, False)
        except HyperError as err:
            print(f"warning: removing {name}: {err}; discarding its VM", file=sys.stderr)
            discard_vm(client, found.dom, root, found.current.vm_id)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 3, 6], help="pods per start (at most 20)")
    parser.add_argument("--runs", type=int, default=1, help="runs per count and way, alternating which goes first")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    args = parser.parse_args(argv)
    counts = [max(1, min(c, 20)) for c in args.counts]
    sigterm_interrupts()
    slots = load_boot_slot_settings(args.root)
    load_before = load_average()
    prefix = POD_PREFIX + secrets.token_hex(3) + "-"
    walls: dict[tuple[str, int], list[float]] = {}
    boots: dict[tuple[str, int], list[float]] = {}
    waits: dict[tuple[str, int], list[float]] = {}
    with LibvirtClient.open(args.uri) as client, tempfile.TemporaryDirectory(prefix="hyper-async-bench-") as work:
        with open(os.path.join(work, "play.yml"), "w", encoding="utf-8") as play:
            play.write(PLAYBOOK)
        try:
            print(f"boot slots: {slots.slots}, queue timeout {slots.queue_timeout:g} s; warm-up", flush=True)
            run_playbook(work, "sequential", 1, prefix + "warm-", args)
            step = 0
            for _run in range(args.runs):
                for count in counts:
                    order = MODES if step % 2 == 0 else MODES[::-1]
                    step += 1
                    for mode in order:
                        wall, timings = run_playbook(work, mode, count, f"{prefix}{mode[0]}{count}-", args)
                        walls.setdefault((mode, count), []).append(wall)
                        boots.setdefault((mode, count), []).extend(t["containers_running"] for t in timings)
                        waits.setdefault((mode, count), []).extend(t.get("boot_slot_wait", 0.0) for t in timings)
                        print(f"{count} pods {mode}: {wall:.1f} s ({wall / count:.2f} s per pod)", flush=True)
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            remove_leftovers(client, prefix, args.root, args.uri)
    print(f"\nN pods started by one hyper_pod task, wall time (median over {args.runs} run(s)); boot slots {slots.slots}")
    print(f"{'N':>3} {'sequential':>11} {'per pod':>8} {'async':>8} {'per pod':>8} {'async/seq':>10} {'boot seq':>9} {'boot async':>11} {'slot wait':>10}")
    for count in counts:
        seq, par = median(walls[("sequential", count)]), median(walls[("async", count)])
        print(
            f"{count:>3} {seq:>10.1f}s {seq / count:>7.2f}s {par:>7.1f}s {par / count:>7.2f}s {par / seq:>10.2f} "
            f"{median(boots[('sequential', count)]):>8.2f}s {median(boots[('async', count)]):>10.2f}s {median(waits[('async', count)]):>9.2f}s"
        )
    print("boot: the module's timings.containers_running (VM start → containers running), median over the pods; slot wait: timings.boot_slot_wait")
    print(f"\nload average before {load_before}, after {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
