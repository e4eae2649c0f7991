# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The small commands Ansible sends the hyper connection, each as it ran before and as it runs now.

One pod ``bench-conn-<hex>`` (one Debian container ``app`` with python3, ``sleep 3600``) is created
with ``ensure_pod`` and removed at the end, also on Ctrl-C and SIGTERM. Each command is the exact
string ``ActionBase._low_level_execute_command`` hands a connection (``/bin/sh -c 'COMMAND && sleep 0'``)
for a ``copy`` task: ``echo ~``, the temporary directory's ``mkdir``, ``chmod u+rwx``, ``rm -f -r``,
and a pipelined module start (``/usr/bin/python3`` reading ``import sys`` from stdin). Interleaved,
each run through ``run_in_container`` (the connection's call, ``large_output=True``):

- before: ``["/bin/sh", "-c", STRING]`` (what the connection ran until issue 16);
- now: ``command_argv(STRING)`` (plugins/plugin_utils/_shell_command.py: Ansible's wrapper run as it is,
  without the ``sleep 0``).

Medians and the ratio now / before; one untimed warm-up each (it also starts the container's exec helper).

    PYTHONPATH=.build/collections .venv/bin/python bench/connection_commands.py --runs 9
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Optional

from _common import PREFIX, BenchPod, load_average, median, sigterm_interrupts

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import run_in_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient
from ansible_collections.hyper.pods.plugins.plugin_utils._shell_command import command_argv

POD_PREFIX = PREFIX + "conn-"
DEFAULT_IMAGE = "oci:/var/lib/hyper-test/images/oci:debian-python"
CONTAINER = "app"
TMP = "/root/.ansible/tmp"


def wrapped(body: str) -> str:
    """The string Ansible hands the connection for ``body`` (default executable, ``sleep 0`` appended)."""
    return "/bin/sh -c " + shlex.quote(body + " && sleep 0")


def commands(run: int, variant: str) -> dict[str, tuple[str, Optional[bytes]]]:
    """The commands of one copy item; every mkdir makes a new directory, as Ansible's do."""
    name = f"ansible-tmp-{run}-{variant}"
    mkdtemp = f'( umask 77 && mkdir -p "` echo {TMP} `"&& mkdir "` echo {TMP}/{name} `" && echo {name}="` echo {TMP}/{name} `" )'
    return {
        "echo ~": (wrapped("echo ~"), None),
        "mkdir tmp": (wrapped(mkdtemp), None),
        "chmod u+rwx": (wrapped(f"chmod u+rwx {TMP}/{name}/"), None),
        "rm -f -r": (wrapped(f"rm -f -r {TMP}/{name}/ > /dev/null 2>&1"), None),
        "python3 (stdin)": (wrapped("/usr/bin/python3"), b"import sys\n"),
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--container-image", default=DEFAULT_IMAGE, help="an image with /usr/bin/python3")
    parser.add_argument("--image", default="default", help="guest image name under <root>/images/")
    parser.add_argument("--root", default="/var/lib/hyper")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--memory", type=int, default=512, help="MiB")
    args = parser.parse_args(argv)
    sigterm_interrupts()
    load_before = load_average()
    times: dict[tuple[str, str], list[float]] = {}
    with LibvirtClient.open(args.uri) as client:
        container = {"name": CONTAINER, "image": args.container_image, "command": ["sleep", "3600"], "stop_timeout": 0}
        spec = {"memory": args.memory, "accelerator": "tcg", "guest_image": args.image, "containers": [container]}
        bench = BenchPod(client, POD_PREFIX, args.root, args.uri, spec)
        try:
            print(f"creating pod {bench.name}", flush=True)
            dom, vm_id = bench.start()
            agent = GuestAgent(LibvirtAgentTransport(dom, vm_id))
            for run in range(-1, args.runs):
                for variant in ("before", "now") if run % 2 == 0 else ("now", "before"):
                    for label, (command, stdin) in commands(run, variant).items():
                        argv = ["/bin/sh", "-c", command] if variant == "before" else command_argv(command)
                        start = time.monotonic()
                        result = run_in_container(agent, CONTAINER, argv, stdin=stdin, large_output=True)
                        seconds = time.monotonic() - start
                        if result.rc != 0:
                            raise RuntimeError(f"{label} ({variant}): exit {result.rc}: {result.stderr[-500:]!r}")
                        if run >= 0:  # run -1 is the warm-up
                            times.setdefault((label, variant), []).append(seconds)
        except KeyboardInterrupt:
            print("interrupted; cleaning up", file=sys.stderr)
            return 130
        finally:
            bench.cleanup()
    print(f"\nms per command through run_in_container (large_output), median of {args.runs}, interleaved")
    print(f"{'command':<18} {'before':>8} {'now':>8} {'ratio':>6}")
    labels = list(commands(0, "x"))
    for label in labels:
        before, now = median(times[(label, "before")]) * 1000, median(times[(label, "now")]) * 1000
        print(f"{label:<18} {before:>8.1f} {now:>8.1f} {now / before:>6.2f}")
    total_before = sum(median(times[(label, "before")]) for label in labels) * 1000
    total_now = sum(median(times[(label, "now")]) for label in labels) * 1000
    print(f"{'sum':<18} {total_before:>8.1f} {total_now:>8.1f} {total_now / total_before:>6.2f}")
    print(f"\nload average before {load_before}, after {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
