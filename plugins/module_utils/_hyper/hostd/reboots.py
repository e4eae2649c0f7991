# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Guest reboot loops: when the host service stops a pod whose guest keeps rebooting (docs/runtime.md). Pure.

A pod with a config disk has ``on_reboot`` restart: a guest reboot resets the VM in the same QEMU and
the guest brings the pod up again by itself. A guest that reboots at every boot (a container that
resets it, a bad kernel argument, a watchdog) would do so forever, unseen by any task. The host
service counts each pod's reboots on the host's clock (the times libvirt's reboot events reach it,
never a time from the guest); at REBOOT_LOOP_COUNT reboots within REBOOT_LOOP_WINDOW seconds it
destroys the VM and, by the pod's restart policy, restarts it through the back-off (hostd/backoff.py),
at most MAX_LOOP_RESTARTS times since the pod's last stable run; after that the VM is left stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.backoff import STABLE_RUN

# One guest reboot makes QEMU reset more than once within a second (a reboot event for each): reboot
# events less than this after the last counted one are the same reboot. Shorter than any boot, so a
# loop is counted at least every other reboot even where a boot takes under REBOOT_REPEAT (KVM).
REBOOT_REPEAT = 2.0
# A loop: this many reboots within the window. A pod that reboots on purpose now and then is far from
# it (one reboot every 24 s for two minutes); a guest that reboots at each boot reaches it in about
# five boots (~20 s under TCG here).
REBOOT_LOOP_COUNT = 5
REBOOT_LOOP_WINDOW = STABLE_RUN
# Restarts after a stopped loop, counted by the back-off's attempts since the pod's last stable run
# (STABLE_RUN seconds up): the next loop leaves the VM stopped.
MAX_LOOP_RESTARTS = 3
REASON = "reboot_loop"


@dataclass
class RebootCounter:
    """One pod's counted reboots within the window (host times, seconds)."""

    count: int = REBOOT_LOOP_COUNT
    window: float = REBOOT_LOOP_WINDOW
    repeat: float = REBOOT_REPEAT
    times: list[float] = field(default_factory=list)
    last: float = float("-inf")  # the last counted reboot, also after a clear (its repeats still follow)

    def rebooted(self, when: float) -> int:
        """A reboot event at ``when``: 0 if it repeats the last counted reboot, else the reboots within the window, this one included."""
        if when - self.last < self.repeat:
            return 0
        self.last = when
        self.times = [t for t in self.times if when - t < self.window]
        self.times.append(when)
        return len(self.times)

    def looping(self) -> bool:
        return len(self.times) >= self.count

    def clear(self) -> None:
        self.times = []


@dataclass(frozen=True)
class LoopDecision:
    restart: bool
    gave_up: bool
    why: str


def decide_loop(policy: str, desired: str, attempt: int, reboots: int, window: float = REBOOT_LOOP_WINDOW, most: int = MAX_LOOP_RESTARTS) -> LoopDecision:
    """After a reboot loop was stopped: restart (restart attempt ``attempt`` of the back-off) or leave the VM stopped."""
    loop = f"the guest rebooted {reboots} times within {window:g} s"
    if desired != "running":
        return LoopDecision(False, False, f"{loop}: stopped; not restarted: the pod's desired state is {desired or 'unknown'}")
    if policy not in ("on-failure", "always"):
        return LoopDecision(False, False, f"{loop}: stopped; not restarted: restart_policy is {policy}")
    if attempt > most:
        return LoopDecision(
            False, True, f"{loop}: stopped and left stopped: {most} restarts after reboot loops since its last stable run; start it with hyper_pod"
        )
    return LoopDecision(True, False, f"{loop}: stopped; restart_policy {policy}: restart {attempt} of at most {most}")
