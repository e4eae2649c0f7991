# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The pod restart policy: what the host service does when a pod's VM ends without being asked to. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError

POD_RESTART_POLICIES = ("never", "on-failure", "always")
# never: what a pod did before the policy existed (it stays down until a task starts it), and a pod
# is restarted only when its owner asks for it (a restart needs the host service, which may not run).
DEFAULT_POD_RESTART_POLICY = "never"
# false: a host reboot brings a pod back only when its owner asks for it.
DEFAULT_AUTOSTART = False

# libvirt's reasons of a STOPPED lifecycle event (virDomainEventStoppedDetailType), by number.
STOPPED_REASONS = {0: "shutdown", 1: "destroyed", 2: "crashed", 3: "migrated", 4: "saved", 5: "failed", 6: "from_snapshot"}
# libvirt's reasons of a shut-off domain (virDomainShutoffReason), as dom.state() gives them. A domain that
# has not run since libvirtd started (a host reboot) is "unknown": libvirt keeps no reason across its restart.
SHUTOFF_REASONS = {0: "unknown", 1: "shutdown", 2: "destroyed", 3: "crashed", 4: "migrated", 5: "saved", 6: "failed", 7: "from_snapshot", 8: "failed"}
UNKNOWN = "unknown"
# The VM ended on its own and not cleanly: a guest panic (pvpanic, on_crash=destroy), QEMU killed or dead.
FAILURES = frozenset({"crashed", "failed"})
# The guest powered off or rebooted (on_poweroff and on_reboot are destroy: both end the VM).
CLEAN_EXITS = frozenset({"shutdown"})
RUNNING = "running"
STOPPED = "stopped"


def check_pod_restart_policy(value: object) -> str:
    if value not in POD_RESTART_POLICIES:
        raise SpecError("restart_policy", value, f"must be one of {', '.join(POD_RESTART_POLICIES)}")
    return str(value)


@dataclass(frozen=True)
class Decision:
    restart: bool
    kind: str  # the journal's word for the stop: crashed (a failure) or stopped
    why: str


def stop_kind(reason: str) -> str:
    return "crashed" if reason in FAILURES else "stopped"


def decide(policy: str, desired: str, reason: str) -> Decision:
    """Restart or not, for a pod whose VM stopped with libvirt's reason while its desired state was desired.

    A pod stopped by a task (desired stopped, or not known) and a VM destroyed on request
    (virsh destroy, a task's own clean-up) are never restarted, whatever the policy.
    """
    kind = stop_kind(reason)
    if desired != RUNNING:
        return Decision(False, kind, f"not restarted: the pod's desired state is {desired or 'unknown'}")
    if policy not in POD_RESTART_POLICIES:
        return Decision(False, kind, f"not restarted: unknown restart policy {policy!r}")
    if policy == "never":
        return Decision(False, kind, "not restarted: restart_policy is never")
    if reason in FAILURES:
        return Decision(True, kind, f"restart_policy {policy}: the VM {reason}")
    if reason in CLEAN_EXITS:
        if policy == "always":
            return Decision(True, kind, "restart_policy always: the guest shut down or rebooted")
        return Decision(False, kind, "not restarted: restart_policy on-failure and the guest shut down or rebooted")
    return Decision(False, kind, f"not restarted: the VM was {reason} on request")
