# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The host service (hyper-hostd): libvirt lifecycle events → the pod restart policy, the event journal.

It acts only on pods whose stored spec carries ``restart_policy`` (domains made before it, or by
anything else, are left alone), and brings a pod back through ``ensure_pod`` (``state: started``),
the modules' own start path: the pod lock, the port rules rebuilt from host-side state. At its own
start, and after libvirt came back, it reconciles: every such pod whose desired state is running
and whose VM is not is started.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import lock_dir, try_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.adopt import RESTART, RUNS, check_running_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.backoff import Backoff
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import record, remove_journal
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.policy import CLEAN_EXITS, SHUTOFF_REASONS, STOPPED_REASONS, UNKNOWN, decide
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.reboots import REASON as LOOP_REASON
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.reboots import REBOOT_LOOP_WINDOW, RebootCounter, decide_loop
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import hostd_dir, log_path, pid_path, read_desired, running_pid, write_private
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import ensure_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import VM_PREFIX
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import CurrentPod, pod_of
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient, import_libvirt

LOG_BYTES = 1 << 20  # the log file is rotated at 1 MiB, one old file kept
# libvirt lifecycle events (virDomainEventType) the journal records, by number.
DEFINED, UNDEFINED, STARTED, STOPPED = 0, 1, 2, 5
# Not a lifecycle event: libvirt's reboot event (VIR_DOMAIN_EVENT_ID_REBOOT), queued under this number.
REBOOTED = -1

log = logging.getLogger("hyper-hostd")


class HostService:
    def __init__(
        self,
        root: str,
        uri: str,
        start_pod: Optional[Callable[[str], None]] = None,
        clock: Callable[[], float] = time.monotonic,
        check_pod: Optional[Callable[[str], str]] = None,
    ) -> None:
        self.root, self.uri = root, uri
        self.clock = clock
        self.start_pod = start_pod or self._ensure_started
        self.check_pod = check_pod or self._check_running
        self.events: queue.Queue[tuple[str, int, int, float]] = queue.Queue()
        self.backoff: dict[str, Backoff] = {}
        self.pending: dict[str, tuple[float, int, float, str]] = {}  # pod → (due, attempt, delay, vm id)
        self.client: Optional[LibvirtClient] = None
        self.stopping = False
        self.reboots: dict[str, RebootCounter] = {}  # pod → its counted reboots (hostd/reboots.py)
        self.loop_stops: set[str] = set()  # VM ids this service destroyed to end a reboot loop: their stop is journaled already
        self.names: dict[str, str] = {}  # VM id → pod name, of the pods seen
        self.own_starts: dict[str, tuple[float, float]] = {}  # pod → wall times of this service's last start of it
        self.orphans: set[str] = set()  # pods whose VM was undefined: their journal goes unless the pod is back

    # -- libvirt -------------------------------------------------------------------------------

    def _ensure_started(self, name: str) -> None:
        ensure_pod({"name": name, "state": "started", "root": self.root, "uri": self.uri}, check_mode=False)

    def _check_running(self, name: str) -> str:
        return check_running_pod(self.root, self.uri, name)

    def connect(self) -> None:
        libvirt = import_libvirt()[0]
        conn = libvirt.open(self.uri)
        conn.setKeepAlive(5, 3)
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, None)
        self.client = LibvirtClient(conn, self.uri)
        log.info("connected to %s", self.uri)

    def _on_lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        # In libvirt's event thread: only queue it; the main loop reads the metadata and acts.
        self.events.put((str(dom.name()), int(event), int(detail), time.time()))

    def _on_reboot(self, _conn: Any, dom: Any, _opaque: Any) -> None:
        # A guest reboot in the same QEMU (on_reboot restart: pods with a config disk): journaled only.
        self.events.put((str(dom.name()), REBOOTED, 0, time.time()))

    def _pod(self, vm_id: str) -> Optional[tuple[Any, CurrentPod]]:
        """The domain and pod of ``vm_id`` if it is a hyper pod that carries a restart policy; None for everything else."""
        if self.client is None or not vm_id.startswith(VM_PREFIX):
            return None
        try:
            dom = self.client.lookup(vm_id)
            current = pod_of(self.client, dom)
        except HyperError:
            return None
        if current is None or not isinstance(current.spec.get("restart_policy"), str):
            return None
        return dom, current

    # -- the loop ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Every pod with a restart policy whose desired state is running and whose VM is not: started now."""
        if self.client is None:
            return
        for dom in self.client.list_domains(prefix=VM_PREFIX):
            found = self._pod(str(dom.name()))
            if found is None:
                continue
            _dom, current = found
            self.names[current.vm_id] = current.name
            if read_desired(self.root, current.vm_id) != "running" or current.name in self.pending:
                continue
            if not current.running:
                self._reconcile_stopped(_dom, current)
            else:  # libvirt's autostart (a host reboot), or a start before this service ran
                self.adopt(current.name, current.vm_id)

    def _reconcile_stopped(self, dom: Any, current: CurrentPod) -> None:
        """A pod to run whose VM is off: the restart policy decides by libvirt's shut-off reason (an event this service missed).

        A VM that has not run since libvirtd started (reason unknown: a host reboot) is left to libvirt's
        autostart, so that a reboot brings back the pods with ``autostart`` and no others.
        """
        name, vm_id = current.name, current.vm_id
        try:
            reason = SHUTOFF_REASONS.get(int(dom.state()[1]), UNKNOWN)
        except Exception:  # pylint: disable=broad-exception-caught
            reason = UNKNOWN
        if reason == UNKNOWN:
            log.info("pod %s (VM %s): off since libvirtd started (a host reboot): left to libvirt's autostart", name, vm_id)
            return
        policy = str(current.spec.get("restart_policy"))
        decision = decide(policy, "running", reason)
        log.info("pod %s (VM %s): desired running, found off (%s): %s", name, vm_id, reason, decision.why)
        if decision.restart:  # the stop this service missed, journaled now (once: the restart follows)
            record(self.root, name, decision.kind, vm_id=vm_id, reason=reason, restart_policy=policy, desired="running", action=decision.why, missed=True)
            self._restart(name, vm_id, 0, 0.0, "reconcile")

    def adopt(self, name: str, vm_id: str) -> None:
        """A running pod no task is handling: its port rules rebuilt, or, when its guest came up bare, started again (hostd/adopt.py)."""
        try:
            outcome = self.check_pod(name)
            if outcome == RESTART:
                log.info("pod %s (VM %s): its guest came up without its containers: starting it again", name, vm_id)
                self._restart(name, vm_id, 0, 0.0, "adopt")
            elif outcome == RUNS:
                self.start_pod(name)  # a running pod: its port rules rebuilt from host-side state
                log.info("pod %s (VM %s): running, port rules checked", name, vm_id)
        except Exception as err:  # pylint: disable=broad-exception-caught
            log.warning("pod %s (VM %s): taking over the running pod failed: %s", name, vm_id, getattr(err, "message", None) or err)

    def handle(self, vm_id: str, event: int, detail: int, when: float) -> None:
        if event == UNDEFINED:
            name = self.names.pop(vm_id, None)
            if name is not None:
                self.orphans.add(name)
            return
        found = self._pod(vm_id)
        if found is None:
            return
        _dom, current = found
        name = current.name
        self.names[vm_id] = name
        if event == DEFINED and detail == 0:
            record(self.root, name, "created", when, vm_id=vm_id)
        elif event == REBOOTED:
            counter = self.reboots.setdefault(name, RebootCounter())
            reboots = counter.rebooted(when)
            if reboots:  # not a repeat of the last one (QEMU resets more than once for one reboot)
                record(self.root, name, "rebooted", when, vm_id=vm_id, reboots=reboots)
                if counter.looping():
                    counter.clear()
                    self._stop_reboot_loop(_dom, current, reboots, when)
        elif event == STARTED:
            self.backoff.setdefault(name, Backoff()).started(self.clock())
            record(self.root, name, "started", when, vm_id=vm_id)
            # Started by neither a task (it would hold the pod) nor this service: libvirt's autostart, virsh start.
            first, last = self.own_starts.get(name, (0.0, -1.0))
            if not first <= when <= last and read_desired(self.root, vm_id) == "running" and name not in self.pending:
                self.adopt(name, vm_id)
        elif event == STOPPED:
            if vm_id in self.loop_stops:  # this service's own destroy of a reboot loop, journaled with it
                self.loop_stops.discard(vm_id)
                return
            reason = STOPPED_REASONS.get(detail, f"reason {detail}")
            desired = read_desired(self.root, vm_id) or "unknown"
            policy = str(current.spec.get("restart_policy"))
            decision = decide(policy, desired, reason)
            fields: dict[str, Any] = {"vm_id": vm_id, "reason": reason, "restart_policy": policy, "desired": desired, "action": decision.why}
            if decision.restart and name not in self.pending:
                attempt, delay = self.backoff.setdefault(name, Backoff()).next(self.clock())
                self.pending[name] = (self.clock() + delay, attempt, delay, vm_id)
                fields.update(attempt=attempt, delay=delay)
            kind = decision.kind
            if reason in CLEAN_EXITS and self._starting(name, when):
                # A guest that powers off or resets before its start finished died at boot (a panic reboots it,
                # panic=-1, and on_reboot ends the VM): a crash, whatever libvirt calls it.
                kind = "crashed"
                fields["during_start"] = True
            record(self.root, name, kind, when, **fields)
            log.info("pod %s (VM %s) %s (%s): %s", name, vm_id, kind, reason, decision.why)

    def _stop_reboot_loop(self, dom: Any, current: CurrentPod, reboots: int, when: float) -> None:
        """A guest that keeps rebooting in place: destroy its VM, then restart it through the back-off, or leave it stopped."""
        name, vm_id = current.name, current.vm_id
        policy = str(current.spec.get("restart_policy"))
        desired = read_desired(self.root, vm_id) or "unknown"
        attempt, delay = self.backoff.setdefault(name, Backoff()).next(self.clock())  # a loop is a failed run
        decision = decide_loop(policy, desired, attempt, reboots)
        self.loop_stops.add(vm_id)
        try:
            if self.client is None or not self.client.destroy(dom):
                self.loop_stops.discard(vm_id)  # it stopped meanwhile: its own stop event tells
                return
        except HyperError as err:
            self.loop_stops.discard(vm_id)
            log.warning("pod %s (VM %s): rebooting in a loop, but destroying it failed: %s", name, vm_id, err.message)
            return
        fields: dict[str, Any] = {"vm_id": vm_id, "reason": LOOP_REASON, "reboots": reboots, "window": REBOOT_LOOP_WINDOW}
        fields.update(restart_policy=policy, desired=desired, action=decision.why)
        if decision.restart and name not in self.pending:
            self.pending[name] = (self.clock() + delay, attempt, delay, vm_id)
            fields.update(attempt=attempt, delay=delay)
        if decision.gave_up:
            fields["gave_up"] = True
        record(self.root, name, "crashed", when, **fields)
        log.warning("pod %s (VM %s): %s", name, vm_id, decision.why)

    def _starting(self, name: str, when: float) -> bool:
        """Whether the pod was being started at ``when``: by this service (its last start's times) or by a task (it holds the pod)."""
        first, last = self.own_starts.get(name, (0.0, -1.0))
        if first <= when <= last:
            return True
        with try_lock(os.path.join(lock_dir(self.root, "hyper-hostd"), f"pod-{name}.lock"), "hyper-hostd: is a task starting the pod") as mine:
            return not mine

    def _restart(self, name: str, vm_id: str, attempt: int, delay: float, why: str) -> None:
        try:
            # Asked again right before: a task may have stopped, removed or started the pod meanwhile.
            found = self._pod(vm_id)
            if found is None or found[1].running or read_desired(self.root, vm_id) != "running":
                log.info("pod %s (VM %s): restart %d dropped: the pod changed meanwhile", name, vm_id, attempt)
                return
            started, began = time.monotonic(), time.time()
            try:
                self.start_pod(name)
            finally:
                self.own_starts[name] = (began, time.time())
            record(self.root, name, "restarted", vm_id=vm_id, attempt=attempt, delay=delay, why=why, seconds=round(time.monotonic() - started, 3))
            log.info("pod %s (VM %s): restarted (attempt %d after %.1f s)", name, vm_id, attempt, delay)
        except Exception as err:  # pylint: disable=broad-exception-caught
            message = getattr(err, "message", None) or str(err)
            log.warning("pod %s (VM %s): restart %d failed: %s", name, vm_id, attempt, message)
            next_attempt, next_delay = self.backoff.setdefault(name, Backoff()).next(self.clock())
            self.pending[name] = (self.clock() + next_delay, next_attempt, next_delay, vm_id)
            record(self.root, name, "restart_failed", vm_id=vm_id, attempt=attempt, error=message, next_attempt=next_attempt, next_delay=next_delay)

    def sweep_journals(self) -> None:
        """Remove the journal of each pod whose VM was undefined and that has no VM any more.

        hyper_pod removes a pod's journal with the pod; an event handled in the moment between
        (the stop of a removal) would write it again. A pod a task holds (its lock) is looked at later.
        """
        if self.client is None:
            return
        for name in sorted(self.orphans):
            with try_lock(os.path.join(lock_dir(self.root, "hyper-hostd"), f"pod-{name}.lock"), "hyper-hostd: the journal of a removed pod") as mine:
                if not mine:
                    continue
                self.orphans.discard(name)
                if name not in self.names.values() and not any(self._named(str(d.name()), name) for d in self.client.list_domains(prefix=VM_PREFIX)):
                    remove_journal(self.root, name)
                    log.info("pod %s: removed, its journal with it", name)

    def _named(self, vm_id: str, name: str) -> bool:
        found = self._pod(vm_id)
        return found is not None and found[1].name == name

    def run_due(self) -> None:
        now = self.clock()
        for name, (due, attempt, delay, vm_id) in sorted(self.pending.items()):
            if due <= now:
                del self.pending[name]
                self._restart(name, vm_id, attempt, delay, "restart_policy")

    def loop(self) -> None:
        libvirt = import_libvirt()[0]
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_events, args=(libvirt,), name="libvirt-events", daemon=True).start()
        while not self.stopping:
            if self.client is None or not self.client.conn.isAlive():
                try:
                    self.client = None
                    self.connect()
                    self.reconcile()
                except Exception as err:  # pylint: disable=broad-exception-caught
                    log.warning("libvirt at %s: %s; trying again in 5 s", self.uri, getattr(err, "message", None) or err)
                    self.client = None
                    time.sleep(5)
                    continue
            due = min((p[0] for p in self.pending.values()), default=self.clock() + 5.0)
            try:
                item = self.events.get(timeout=max(0.05, min(5.0, due - self.clock())))
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self.handle(*item)
                self.run_due()
                if self.orphans and self.events.empty():
                    self.sweep_journals()
            except Exception:  # pylint: disable=broad-exception-caught
                log.exception("event %s", item)


def _run_events(libvirt: Any) -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def main(root: str, uri: str) -> int:
    """Run the service in the foreground; one per state root (its pid file says which)."""
    hostd_dir(root)
    other = running_pid(root)
    if other is not None and other != os.getpid():
        sys.stderr.write(f"hyper-hostd already runs for {root} (pid {other})\n")
        return 0
    handler = logging.handlers.RotatingFileHandler(log_path(root), maxBytes=LOG_BYTES, backupCount=1)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    os.chmod(log_path(root), 0o600)
    write_private(pid_path(root), f"{os.getpid()}\n")
    service = HostService(root, uri)

    def stop(_signum: int, _frame: Any) -> None:
        service.stopping = True

    signal.signal(signal.SIGTERM, stop)
    log.info("hyper-hostd %d started (root %s)", os.getpid(), root)
    try:
        service.loop()
    finally:
        log.info("hyper-hostd %d stopped", os.getpid())
        if running_pid(root) == os.getpid():
            os.unlink(pid_path(root))
    return 0
