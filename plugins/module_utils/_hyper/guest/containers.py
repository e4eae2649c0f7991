# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""GuestPod: the host side of the pod protocol (docs/guest-protocol.md) over one GuestAgent.

Every call is a guest-exec of an argv of ``/usr/sbin/hyper-container`` (shipped in the initrd by
the guest_image role) or a guest-file write; the host never builds a shell command line.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, TypedDict

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentCommandError, AgentError, ContainerError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import ExecResult, ExecTimeout, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.health import HealthState, parse_health
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.logs import log_lines
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import load_guest_json
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE, SettleWatch, not_running_reason
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline, Sleep, backoff

GUEST_COMMAND = layout.GUEST_COMMAND
CONTAINERS_DIR = layout.CONTAINERS_DIR
CONFIG_FILE = layout.CONFIG_FILE
META_FILE = layout.META_FILE
# The overlay is mounted at <container dir>/rootfs; config.json must point there.
ROOT_PATH = layout.ROOTFS
# What the guest script accepts: a name (SIGTERM, TERM) or a number; crun kill understands both.
SIGNAL_PATTERN = re.compile(r"[A-Z][A-Z0-9]*|[1-9][0-9]?")
STATES = ("created", "starting", "running", "restarting", "exited", "stopped", "unknown")

MAX_STOP_TIMEOUT = float(layout.MAX_STOP_TIMEOUT)
# start, status, logs, mkdir: a busybox script and a mount or two, slow only under TCG.
COMMAND_TIMEOUT = 30.0
# stop/remove run longer than their stop timeout: the SIGKILL grace (5 s in the guest), crun delete, umount.
STOP_GRACE = 20.0
WAIT_TIMEOUT = 60.0
DEFAULT_LOG_LINES = 50
LOG_TAIL_LINES = 20
# status polls: one agent exec costs tens of ms under TCG; no need to ask faster than this.
POLL_FIRST = 0.05
POLL_CAP = 0.5


class _HealthPart(TypedDict, total=False):
    # Only for a container with a healthcheck (guest/health.py).
    health: HealthState


class ContainerState(_HealthPart):
    """One container as ``hyper-container status`` reports it."""

    status: str
    pid: Optional[int]
    exit_code: Optional[int]
    restarts: int


check_name = layout.check_container_name
container_dir = layout.container_dir


def _seconds(value: object, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= MAX_STOP_TIMEOUT:
        raise SpecError(option, value, f"must be a number of seconds between 0 and {MAX_STOP_TIMEOUT:g}")
    return round(float(value), 2)


def _seconds_arg(seconds: float) -> str:
    """Seconds as the guest script reads them: ``10``, ``2.5``, ``0.25`` (at most two decimals)."""
    text = f"{seconds:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def container_meta(name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised container.json: ``serial`` required; restart_policy, stop_signal and stop_timeout defaulted."""
    check_name(name)
    unknown = sorted(set(meta) - {"name", "serial", "restart_policy", "stop_signal", "stop_timeout"})
    if unknown:
        raise SpecError("meta", dict(meta), f"unknown keys {', '.join(unknown)}")
    if meta.get("name", name) != name:
        raise SpecError("meta.name", meta.get("name"), f"does not match the container name {name!r}")
    serial = meta.get("serial")
    if not isinstance(serial, str) or not layout.IMAGE_SERIAL.fullmatch(serial):
        raise SpecError("meta.serial", serial, "must be an image disk serial, hyper-img-<10 hex digits> (bundle.disk_serial)")
    policy = meta.get("restart_policy", layout.DEFAULT_RESTART_POLICY)
    if policy not in layout.RESTART_POLICIES:
        raise SpecError("restart_policy", policy, f"must be one of {', '.join(layout.RESTART_POLICIES)}")
    signal = meta.get("stop_signal", layout.DEFAULT_STOP_SIGNAL)
    if isinstance(signal, int) and not isinstance(signal, bool):
        signal = str(signal)
    if not isinstance(signal, str) or not SIGNAL_PATTERN.fullmatch(signal):
        raise SpecError("stop_signal", signal, "must be a signal name such as SIGTERM or a number")
    timeout = _seconds(meta.get("stop_timeout", layout.DEFAULT_STOP_TIMEOUT), "stop_timeout")
    return {"name": name, "serial": serial, "restart_policy": policy, "stop_signal": signal, "stop_timeout": int(timeout) if timeout.is_integer() else timeout}


def parse_status(text: str) -> dict[str, ContainerState]:
    """The JSON of ``hyper-container status``, checked field by field."""
    data = load_guest_json(text, "hyper-container status")  # bounded: size, depth, count
    if not isinstance(data, dict):
        raise AgentError(f"hyper-container status printed {type(data).__name__}, not a JSON object: {text[:200]!r}")
    states: dict[str, ContainerState] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise AgentError(f"hyper-container status: container {name} has {entry!r}, not an object")
        status = entry.get("status")
        pid = entry.get("pid")
        exit_code = entry.get("exit_code")
        restarts = entry.get("restarts", 0)
        if status not in STATES:
            raise AgentError(f"hyper-container status: container {name} has an unknown status {status!r}")
        for field, value in (("pid", pid), ("exit_code", exit_code)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise AgentError(f"hyper-container status: container {name} has {field} {value!r}, not a number or null")
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
            raise AgentError(f"hyper-container status: container {name} has restarts {restarts!r}, not a number")
        states[name] = ContainerState(status=status, pid=pid, exit_code=exit_code, restarts=restarts)
        if entry.get("health") is not None:
            states[name]["health"] = parse_health(entry["health"], name)
    return states


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _reason(result: ExecResult) -> str:
    message = _text(result.stderr).strip().removeprefix("hyper-container: ")
    how = f"exit code {result.rc}" if result.rc is not None else f"signal {result.signal}"
    return message or f"hyper-container ended with {how}"


def _stop_args(name: str, timeout: Optional[float], verb: str = "stop") -> tuple[list[str], float]:
    """argv after GUEST_COMMAND for a stop or remove, and how long the guest command may take."""
    args = [verb, check_name(name)]
    if timeout is None:
        return args, MAX_STOP_TIMEOUT + STOP_GRACE
    seconds = _seconds(timeout, "timeout")
    return [*args, _seconds_arg(seconds)], seconds + STOP_GRACE


@dataclass(frozen=True)
class PreparedContainer:
    """What the guest needs for one container: its OCI runtime config and ``container.json``."""

    name: str
    config: dict[str, Any]
    meta: dict[str, Any]


class GuestPod:
    """The containers of one pod VM, driven through its guest agent. One request at a time, like the agent."""

    def __init__(self, agent: GuestAgent, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self.agent = agent
        self._clock = clock
        self._sleep = sleep

    # -- one guest command ---------------------------------------------------------------------

    def _exec(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> ExecResult:
        try:
            return self.agent.exec(argv, timeout=timeout)
        except AgentCommandError as err:
            raise self._missing_command(argv, err) from None

    def _spawn(self, argv: Sequence[str]) -> int:
        try:
            return self.agent.spawn(argv)
        except AgentCommandError as err:
            raise self._missing_command(argv, err) from None

    def _missing_command(self, argv: Sequence[str], err: AgentCommandError) -> AgentError:
        if argv[0] == GUEST_COMMAND and "No such file" in err.desc:
            return AgentError(
                f"{self.agent.name}: the guest has no {GUEST_COMMAND}; rebuild its image with the hyper.pods.guest_image role ({err.desc})",
                err.details,
            )
        return err

    def _container_command(self, name: str, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        result = self._exec([GUEST_COMMAND, *args], timeout)
        if result.rc != 0:
            raise ContainerError(name, f"{args[0]} failed in {self.agent.name}: {_reason(result)}")
        return _text(result.stdout).strip()

    # -- the protocol ----------------------------------------------------------------------------

    def write_container(self, name: str, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """Create the container's directory and write config.json (OCI runtime config) and container.json."""
        directory = container_dir(name)
        normalized = container_meta(name, meta)
        root = config.get("root")
        if not isinstance(root, Mapping) or root.get("path") != ROOT_PATH:
            raise SpecError(
                "config.root.path", root.get("path") if isinstance(root, Mapping) else root, f"must be {ROOT_PATH!r}: the guest mounts the overlay there"
            )
        result = self._exec(["mkdir", "-p", directory])
        if result.rc != 0:
            raise ContainerError(name, f"cannot create {directory} in {self.agent.name}: {_reason(result)}")
        self.agent.write_file(f"{directory}/{CONFIG_FILE}", json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8"))
        self.agent.write_file(f"{directory}/{META_FILE}", json.dumps(normalized, sort_keys=True, separators=(",", ":")).encode("utf-8"))

    def start(self, name: str) -> bool:
        """Start the container's supervisor; False when it was already running (nothing done)."""
        return self._container_command(check_name(name), "start", name) == "started"

    def stop(self, name: str, timeout: Optional[float] = None) -> None:
        """Stop signal, up to ``timeout`` seconds (default: the container's stop_timeout), SIGKILL, delete, unmount."""
        args, exec_timeout = _stop_args(name, timeout)
        self._container_command(name, *args, timeout=exec_timeout)

    def stop_many(self, items: Sequence[tuple[str, Optional[float]]]) -> None:
        """Stop several containers at once: ``(name, timeout)`` each, as for ``stop``; the waits overlap.

        Every ``hyper-container stop`` is spawned before any is waited for, so the pod takes its
        longest timeout, not their sum. Each wait is bounded from its own spawn. Failures are
        collected: one ContainerError names every container whose stop failed or outlived its
        bound. An agent that stops answering raises at once (the guest is past saving then).
        """
        commands = [(name, *_stop_args(name, timeout)) for name, timeout in items]  # SpecError before any agent call
        started: list[tuple[str, int, float, float]] = []
        for name, args, exec_timeout in commands:
            started.append((name, self._spawn([GUEST_COMMAND, *args]), self._clock(), exec_timeout))
        failures: dict[str, str] = {}
        for name, pid, spawned, exec_timeout in started:
            try:
                result = self.agent.wait(pid, max(0.0, spawned + exec_timeout - self._clock()), what=f"{GUEST_COMMAND} stop {name}")
            except ExecTimeout as err:
                failures[name] = f"stop did not finish in {self.agent.name} within {exec_timeout:g}s" + ("" if err.killed else " (and could not be killed)")
                continue
            if result.rc != 0:
                failures[name] = f"stop failed in {self.agent.name}: {_reason(result)}"
        if len(failures) == 1:
            name, reason = next(iter(failures.items()))
            raise ContainerError(name, reason)
        if failures:
            names = list(failures)
            raise ContainerError(", ".join(names), "; ".join(f"{name}: {reason}" for name, reason in failures.items()), details={"containers": names})

    def remove(self, name: str, timeout: Optional[float] = None) -> bool:
        """Stop the container if needed and delete its directory (writable layer and log too); False when absent."""
        args, exec_timeout = _stop_args(name, timeout, "remove")
        return self._container_command(name, *args, timeout=exec_timeout) == "removed"

    def status(self) -> dict[str, ContainerState]:
        """Every container of the guest in one round trip: ``{name: {status, pid, exit_code, restarts}}``."""
        result = self._exec([GUEST_COMMAND, "status"])
        if result.rc != 0:
            raise AgentError(f"{self.agent.name}: hyper-container status failed: {_reason(result)}")
        return parse_status(_text(result.stdout))

    def logs(self, name: str, lines: int = DEFAULT_LOG_LINES, since: Optional[float] = None) -> str:
        """The last ``lines`` lines of the container's stdout and stderr (restart markers included), without their times.

        With ``since`` (seconds since the epoch, the guest's clock), only the lines written after it.
        """
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
            raise SpecError("lines", lines, "must be a whole number above 0")
        result = self._exec([GUEST_COMMAND, "logs", check_name(name), str(lines)])
        if result.rc != 0:
            raise ContainerError(name, f"cannot read its log in {self.agent.name}: {_reason(result)}")
        return "".join(line + "\n" for line in log_lines(_text(result.stdout), since))

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The log's last lines for an error message; empty when they cannot be read (never hides the real error)."""
        try:
            return self.logs(name, lines).splitlines()
        except (AgentError, ContainerError):
            return []

    def wait_running(self, names: Sequence[str], timeout: float = WAIT_TIMEOUT, settle: float = DEFAULT_SETTLE) -> dict[str, ContainerState]:
        """Poll status until every container in ``names`` runs with a pid; return their states.

        A container counts as up once it has been seen running, with the same pid and no restart
        in between, across at least ``settle`` seconds (guest/settle.py: counted per container,
        from its first sighting); with 0, as soon as it is seen running.
        A container that exited, was stopped, is restarting (it exited since its start) or was
        never started fails at once with its log tail; one still starting at ``timeout`` too.
        """
        return self.wait_settled(SettleWatch([check_name(name) for name in names], settle), timeout)

    def wait_settled(
        self,
        watch: SettleWatch,
        timeout: float,
        first: Optional[tuple[Mapping[str, ContainerState], float, float]] = None,
        *,
        poll_cap: float = POLL_CAP,
        missing: str = "write and start it first",
    ) -> dict[str, ContainerState]:
        """``wait_running`` with a watch of the caller's.

        ``first`` is a status answer the caller has already (states, sent, answered: host clock);
        ``poll_cap`` caps the polls while a container starts; ``missing`` ends the message for a
        container that is not in the guest at all.
        """
        deadline = Deadline(timeout, self._clock)
        delays = backoff(POLL_FIRST, cap=poll_cap)
        while True:
            if first is not None:
                states, sent, answered = first
                first = None
            else:
                sent = self._clock()
                states = self.status()
                answered = self._clock()
            verdict = watch.observe(states, sent, answered)
            if verdict.up:
                return {name: states[name] for name in watch.names}
            if verdict.failed is not None:
                if verdict.missing:
                    raise ContainerError(verdict.failed, f"is not in {self.agent.name}: {missing}")
                raise self._not_running(verdict.failed, states[verdict.failed])
            remaining = deadline.remaining
            if remaining <= 0:
                break
            # Backoff while a container starts; once all run, look again when their settle time is up
            # (backoff overshot it by ~0.3 s under TCG: pod start, bench/pod_start.py).
            delay = next(delays) if verdict.starting else verdict.settle_left
            self._sleep(min(delay, remaining))
        name, *others = verdict.pending
        also = f" (nor did {', '.join(others)})" if others else ""
        raise ContainerError(
            name, f"did not reach running within {timeout:g}s: still {states[name]['status']}{also}", self.log_tail(name), {"state": dict(states[name])}
        )

    def _not_running(self, name: str, state: Mapping[str, Any]) -> ContainerError:
        return ContainerError(name, not_running_reason(state), self.log_tail(name), {"state": dict(state)})
