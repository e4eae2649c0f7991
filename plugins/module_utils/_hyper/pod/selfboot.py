# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The host's side of a pod that boots itself: start the VM, then wait for one "pod ready" answer.

The guest's init brings the pod up from its config disk (pod/config_disk.py) while qemu-ga
starts; the host asks once, with ``hyper-boot wait SECONDS``, which returns when the boot
finished (every container's supervisor started), then polls the containers' status until they
count as up (hyper_pod's ``wait_settle``, guest/settle.py). Its output is the guest's: bounded,
checked (``parse_status``), and its failure message shown escaped and cut.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentTimeout, DomainNotRunning, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import ExecResult, ExecTimeout, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import parse_status
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE, SettleWatch
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_panicked, console_path
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodRuntime
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import GuestPodApi
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Deadline

# libvirt's on_reboot of a pod with a config disk: a guest reboot (``reboot -f`` in it, ``virsh reset``, a
# watchdog) restarts the VM in the same QEMU, and the guest brings the pod up again by itself. Pods
# without one keep ``destroy`` (their guest would come back empty; the host service may restart them).
SELF_BOOT_ON_REBOOT = "restart"
# The guest's reason for a failed boot, as the message shows it.
MAX_REASON = 2000
# The agent's exec outlives the guest's own wait by this much (the status it prints afterwards).
EXEC_GRACE = 15.0
# How often the host asks whether the guest's wait has returned: a fixed short interval (a status call
# is a few ms), where exec's paced polls were up to 10 % of the wait late (~0.15 s of a TCG pod start).
WAIT_POLL = 0.02
# The status polls while a container starts after the boot (``crun run`` takes ~0.4 s under TCG): short,
# each is one guest-exec of a few ms of guest CPU.
BOOT_POLL_CAP = 0.1


class BootFailed(HyperError):
    """The guest reported that it could not bring the pod up (its reason is in the message)."""


def guest_reason(result: ExecResult) -> str:
    """The guest's one-line reason, as a host message may carry it: decoded, control characters escaped, bounded."""
    text = result.stderr.decode("utf-8", errors="replace").strip().removeprefix("hyper-boot: ")
    text = "".join(c if c.isprintable() or c == "\n" else "?" for c in text[-MAX_REASON:])
    how = f"exit code {result.rc}" if result.rc is not None else f"signal {result.signal}"
    return text or f"hyper-boot ended with {how}"


def wait_argv(seconds: float, names: Sequence[str] = ()) -> list[str]:
    return [layout.BOOT_COMMAND, "wait", str(max(1, int(seconds))), *[layout.check_container_name(n) for n in names]]


def wait_for_boot(agent: GuestAgent, argv: Sequence[str], timeout: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> ExecResult:
    """Run the guest's ``hyper-boot wait`` and collect it every WAIT_POLL seconds; killed and ExecTimeout after ``timeout``."""
    pid = agent.spawn(argv)
    deadline = Deadline(timeout, clock)
    while True:
        with contextlib.suppress(AgentTimeout):  # a status call is safe to repeat
            result = agent.poll(pid)
            if result is not None:
                return result
        if deadline.expired:
            killed = agent.kill(pid)
            raise ExecTimeout(f"{agent.name}: {argv[0]} (pid {pid}) ran longer than {timeout:g}s", None, killed)
        sleep(min(WAIT_POLL, deadline.remaining))


def boot_from_config(
    runtime: PodRuntime, dom: Domain, pod: str, vm_id: str, names: Sequence[str], *, wait: bool, timeout: float, settle: float = DEFAULT_SETTLE
) -> None:
    """Start the VM and wait for its guest to report the pod up; a PodError (step, console or log tail) otherwise.

    The guest's ``hyper-boot wait`` returns once the boot carried out its config disk (every
    container's supervisor started) with ``hyper-container status``; with ``wait`` the host then
    polls that status until each container ran ``settle`` seconds with one pid (guest/settle.py).
    The guest's own 0.5 s settle (``pod-settled`` on its console) is not waited for.
    """
    clock = runtime.clock
    deadline = Deadline(timeout, clock)
    started = clock()
    progress = BootProgress("starting the VM")
    try:
        runtime.client.start(dom)
        progress.step = "waiting for the guest agent"
        agent = runtime.agent(dom, vm_id)
        # A guest that panics before its agent answers resets in place (panic=-1, on_reboot=restart) and would
        # never answer: its panic on the console fails the start at once (the host service then backs off).
        console = console_path(runtime.root, vm_id)
        try:
            agent.wait_ready(max(deadline.remaining, 1.0), is_alive=lambda: runtime.client.is_active(dom) and not console_panicked(console))
        except DomainNotRunning:
            if not console_panicked(console):
                raise
            raise BootFailed("the guest's kernel panicked before its agent answered (a guest that panics resets in place)") from None
        runtime.timings["agent_ready"] = round(clock() - started, 3)
        await_pod_up(runtime, agent, names, wait=wait, settle=settle, deadline=deadline, started=started, progress=progress)
    except HyperError as err:
        raise runtime._failure(err, pod, vm_id, progress.step, None, progress.guest) from None  # pylint: disable=protected-access


@dataclass
class BootProgress:
    """Where a start is, for its failure: the step, and the guest's pod API once it was made (for its logs)."""

    step: str
    guest: Optional[GuestPodApi] = None


def await_pod_up(
    runtime: PodRuntime,
    agent: GuestAgent,
    names: Sequence[str],
    *,
    wait: bool,
    settle: float,
    deadline: Deadline,
    started: float,
    progress: BootProgress,
) -> None:
    """After the guest's agent answered, of a cold boot or a resumed pool VM: ``hyper-boot wait`` returns once the
    guest's boot carried out its config disk (every supervisor started); with ``wait`` the host then polls
    ``hyper-container status`` until each container ran ``settle`` seconds with one pid (guest/settle.py)."""
    clock = runtime.clock
    progress.step = "waiting for the pod's boot"
    seconds = max(deadline.remaining, 1.0)
    sent = clock()
    result = wait_for_boot(agent, wait_argv(seconds), seconds + EXEC_GRACE, clock, runtime.session.sleep)
    answered = clock()
    if result.rc != 0:
        raise BootFailed(guest_reason(result))
    states = parse_status(result.stdout.decode("utf-8", errors="replace"))
    runtime.timings["pod_booted"] = round(answered - started, 3)
    if wait and names:
        progress.step = "waiting for the containers to run"
        progress.guest = runtime.session.make_guest_pod(agent)
        watch = SettleWatch(list(names), settle)
        first = (states, sent, answered)
        progress.guest.wait_settled(watch, max(deadline.remaining, 1.0), first, poll_cap=BOOT_POLL_CAP, missing="its config disk did not list it")
    runtime.timings["containers_running" if wait else "containers_started"] = round(clock() - started, 3)
