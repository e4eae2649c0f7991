# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""HaproxyGuest: the service container of one pod (haproxy in master-worker mode) driven through the guest agent.

Every guest command is an argv list; the two VIP scripts are fixed texts that take the addresses
as positional parameters. Files are written next to their target and renamed over it, so haproxy
never reads half a configuration.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, Optional, Protocol, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, ContainerError, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import ExecResult, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import CONTAINERS_DIR, check_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import container_rootfs, run_in_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.fast_exec import SocketAnswer, launch, socket_line
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import ContainerFiles
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import vips
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.master_cli import (
    MASTER_SOCKET,
    RELOAD,
    SHOW_PROC,
    MasterState,
    parse_show_proc,
    reload_outcome,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import vip_prefix
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.state import STATE_LIMIT as STATE_FILE_LIMIT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.state import StateFileError, parse_state
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline, Sleep, backoff

# Paths in the service container (the image of the haproxy_image role).
CONFIG_PATH = "/etc/haproxy/haproxy.cfg"
STATE_PATH = "/etc/haproxy/hyper-services.json"
CANDIDATE_SUFFIX = ".hyper-new"
HAPROXY = "/usr/sbin/haproxy"
# haproxy's master prints this when a reload fails.
RELOAD_FAILED = "Loading failure!"
DEFAULT_RELOAD_TIMEOUT = 60.0
HELPER_TIMEOUT = 30.0
STATE_LIMIT = 64 * 1024 * 1024
PROC_LIMIT = 64 * 1024
# A SIGUSR2 that reached the master while it re-executed itself is lost: send it again after this.
RESIGNAL_SECONDS = 5.0
# After a reload the master re-executes itself and then prints this; a reload asked before that is lost.
MASTER_READY = "path to executable is"
RELOAD_OK = "Loading success."
SETTLE_SECONDS = 10.0
# The master CLI refuses connections while the master re-executes itself; the reload is polled this fast.
CLI_FIRST_DELAY = 0.02
CLI_MAX_DELAY = 0.1
# How much of the container's log the message of a failed reload reads (its end).
LOG_TAIL_BYTES = 64 * 1024
RELOADING = "Reloading HAProxy"
# While it reloads, the master runs at this nice value: its re-execution (a new haproxy's start, under
# TCG ~0.5 s of CPU) then takes the pod's vCPU from the traffic instead of sharing it evenly with a
# client loop, which tripled the reload. Afterwards the master and its workers are set back to 0.
RELOAD_NICE = -10
# Fixed scripts; $1 the supervisor's pid file of the container (guest root, the container cannot write it).
BOOST_SCRIPT = 'read -r p <"$1" && [ "$p" -gt 1 ] && renice "$2" -p "$p" >/dev/null && echo "$p"'
RESTORE_SCRIPT = 'renice 0 -p "$1" $(cat /proc/"$1"/task/"$1"/children) >/dev/null'
LOG_MESSAGE_LINES = 10
# Fixed scripts; the addresses (checked by service_spec, as ADDRESS/PREFIX) are their parameters.
# replace is idempotent; a deletion of an address that is gone already is no failure.
ADD_VIPS_SCRIPT = vips.ADD
REMOVE_VIPS_SCRIPT = vips.REMOVE


class ServiceError(HyperError):
    """Validation or reload of the haproxy configuration failed; the message carries haproxy's own words."""


class ServiceGuestApi(Protocol):
    """What apply_plan uses of the service container; tests pass a fake."""

    config_path: str

    def check_running(self) -> None: ...

    def read_config(self) -> str: ...

    def read_state(self) -> Optional[dict[str, Any]]: ...

    def validate(self, config: str) -> None: ...

    def install_config(self) -> None: ...

    def write_config(self, config: str) -> None: ...

    def discard_candidate(self) -> None: ...

    def add_vips(self, vips: Sequence[str]) -> None: ...

    def remove_vips(self, vips: Sequence[str]) -> None: ...

    def reload(self) -> None: ...

    def write_state(self, state: dict[str, Any]) -> None: ...


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _why(result: ExecResult) -> str:
    text = (_text(result.stderr) or _text(result.stdout)).strip()
    how = f"exit code {result.rc}" if result.rc is not None else f"signal {result.signal}"
    return f"{text} ({how})" if text else how


def haproxy_messages(text: str) -> list[str]:
    """haproxy's ALERT lines (the reasons), else its WARNING lines, else the last lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for mark in ("[ALERT]", "[WARNING]"):
        picked = [line for line in lines if line.startswith(mark)]
        if picked:
            return picked[-LOG_MESSAGE_LINES:]
    return lines[-LOG_MESSAGE_LINES:]


class HaproxyGuest:
    """The haproxy container ``container`` of the guest behind ``agent``."""

    def __init__(
        self,
        agent: GuestAgent,
        container: str = "haproxy",
        *,
        reload_timeout: float = DEFAULT_RELOAD_TIMEOUT,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.agent = agent
        self.container = check_name(container)
        self.rootfs = container_rootfs(container)
        self.config_path = CONFIG_PATH
        self.reload_timeout = reload_timeout
        self._clock = clock
        self._sleep = sleep
        self._log = f"{CONTAINERS_DIR}/{container}/log"
        # Every read and write under the container's root: no link planted there is followed (docs/security.md).
        self.files = ContainerFiles(agent, self.container, timeout=HELPER_TIMEOUT)

    def _guest_path(self, path: str) -> str:
        return self.rootfs + path

    def _run(self, argv: Sequence[str], what: str) -> ExecResult:
        return self.agent.run(argv, what, timeout=HELPER_TIMEOUT)

    # -- reading -----------------------------------------------------------------------------

    def check_running(self) -> None:
        """The service container exists and runs; ContainerError naming it otherwise."""
        result = self.agent.exec(["crun", "state", self.container], timeout=HELPER_TIMEOUT)
        if result.rc != 0:
            raise ContainerError(
                self.container,
                f"is not a container of {self.agent.name}: add the haproxy image (role hyper.pods.haproxy_image) to the pod as "
                f"container {self.container} ({_text(result.stderr).strip().removeprefix('crun: ')})",
            )
        try:
            status = json.loads(result.stdout).get("status")
        except (ValueError, AttributeError):
            status = "unknown"
        if status != "running":
            raise ContainerError(self.container, f"is {status} in {self.agent.name}, not running: start the pod again with hyper.pods.hyper_pod")
        # The exec helper starts in the background now, so that haproxy -c finds it (guest/fast_exec.py).
        launch(self.agent, self.container)

    def _read_optional(self, path: str, limit: int = STATE_LIMIT) -> Optional[bytes]:
        return self.files.read(path, limit=limit)

    def read_config(self) -> str:
        return _text(self._read_optional(CONFIG_PATH) or b"")

    def read_state(self) -> Optional[dict[str, Any]]:
        """The state file, or None when there is none yet (a fresh service container); checked as user input (service/state.py)."""
        where = f"{self.agent.name}: {STATE_PATH} in container {self.container}"
        try:
            return parse_state(self._read_optional(STATE_PATH, STATE_FILE_LIMIT), where)
        except StateFileError as err:
            raise ServiceError(err.message, {"state_file": STATE_PATH}) from None

    # -- configuration -----------------------------------------------------------------------

    def validate(self, config: str) -> None:
        """Write ``config`` as the candidate and check it with ``haproxy -c`` in the container; ServiceError with haproxy's words."""
        candidate = CONFIG_PATH + CANDIDATE_SUFFIX
        self.files.write(candidate, config.encode("utf-8"))
        result = run_in_container(self.agent, self.container, [HAPROXY, "-c", "-f", candidate], timeout=HELPER_TIMEOUT)
        if result.rc != 0:
            self.discard_candidate()
            output = _text(result.stdout) + _text(result.stderr)
            messages = haproxy_messages(output)
            raise ServiceError(
                f"haproxy rejected the new configuration of pod service container {self.container}; nothing was changed:\n" + "\n".join(messages),
                {"haproxy_output": output.splitlines()},
            )

    def install_config(self) -> None:
        """Rename the validated candidate over haproxy.cfg (atomic in the container's file system)."""
        if not self.files.rename(CONFIG_PATH + CANDIDATE_SUFFIX, CONFIG_PATH):
            raise AgentError(f"{self.agent.name}: installing {CONFIG_PATH} in container {self.container}: the validated candidate is gone")

    def write_config(self, config: str) -> None:
        """Put ``config`` in place without validation (the rollback of a configuration that ran before)."""
        self._write_atomic(CONFIG_PATH, config.encode("utf-8"))

    def discard_candidate(self) -> None:
        with contextlib.suppress(AgentError):
            self.files.remove(CONFIG_PATH + CANDIDATE_SUFFIX)

    def write_state(self, state: dict[str, Any]) -> None:
        self._write_atomic(STATE_PATH, json.dumps(state, sort_keys=True, indent=1).encode("utf-8"))

    def _write_atomic(self, path: str, data: bytes) -> None:
        self.files.write(path, data)  # beside it under a random name, then renamed onto it

    # -- addresses ---------------------------------------------------------------------------

    def add_vips(self, vips: Sequence[str]) -> None:
        if vips:
            self._run(["sh", "-c", ADD_VIPS_SCRIPT, "sh", *[vip_prefix(v) for v in vips]], f"adding {', '.join(vips)} to lo")

    def remove_vips(self, vips: Sequence[str]) -> None:
        if vips:
            self._run(["sh", "-c", REMOVE_VIPS_SCRIPT, "sh", *[vip_prefix(v) for v in vips]], f"removing {', '.join(vips)} from lo")

    # -- reload ------------------------------------------------------------------------------

    def _log_size(self) -> int:
        result = self._run(["wc", "-c", self._log], "reading the size of the haproxy log")
        try:
            return int(_text(result.stdout).split()[0])
        except (IndexError, ValueError):
            raise AgentError(f"{self.agent.name}: wc -c {self._log} printed {result.stdout[:100]!r}") from None

    def _log_since(self, offset: int) -> str:
        return _text(self._run(["tail", "-c", f"+{offset + 1}", self._log], "reading the haproxy log").stdout)

    def _master_pid(self) -> int:
        """The guest pid of the container's process: haproxy's master."""
        result = self._run(["crun", "state", self.container], f"crun state {self.container}")
        try:
            pid = json.loads(result.stdout)["pid"]
        except (ValueError, KeyError, TypeError):
            pid = None
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise AgentError(f"{self.agent.name}: crun state {self.container} gave no pid: {_text(result.stdout)[:200]!r}")
        return pid

    def _workers(self, master: int) -> set[int]:
        """The master's children (its workers, old ones still finishing included), from the guest's /proc."""
        data = self.agent.read_file(f"/proc/{master}/task/{master}/children", limit=PROC_LIMIT)
        return {int(word) for word in data.split() if word.isdigit()}

    def reload(self) -> None:
        """Reload through haproxy's master CLI; done when the master says it carried the reload out.

        ``show proc`` gives the master's reload and failure counts; ``reload`` is sent (a refused
        connection sent nothing, so it is tried again: the master is re-executing itself); then
        ``show proc`` is polled until the reload count grew. A grown failure count means the new
        configuration did not load (the old worker keeps serving): ServiceError with the ALERT lines of
        the container's log. Each call is one guest-exec of ``hyper-exec mcli`` (guest/fast_exec.py); a
        command sent through a socket is never lost, unlike a signal. Service containers without the
        master socket (an image made before it), whose socket is not its own process's, or guests
        without hyper-exec are reloaded by signal.
        """
        what = f"{self.agent.name}: haproxy's master CLI in container {self.container}"
        deadline = Deadline(self.reload_timeout, self._clock)
        before = self._master_state(what, deadline)
        if before is None:
            self.reload_by_signal()
            return
        master = self._boost()
        try:
            self._reload_by_cli(before, what, deadline)
        finally:
            if master is not None:
                with contextlib.suppress(HyperError):
                    self.agent.exec(["sh", "-c", RESTORE_SCRIPT, "sh", str(master)], timeout=HELPER_TIMEOUT)

    def _boost(self) -> Optional[int]:
        """Give the master RELOAD_NICE for its reload; its guest pid, or None when that did not work (best effort)."""
        pid_file = f"{CONTAINERS_DIR}/{self.container}/pid"
        try:
            result = self.agent.exec(["sh", "-c", BOOST_SCRIPT, "sh", pid_file, str(RELOAD_NICE)], timeout=HELPER_TIMEOUT)
        except HyperError:
            return None
        text = _text(result.stdout).strip()
        return int(text) if result.rc == 0 and text.isdigit() and 1 < int(text) < 2**22 else None

    def _reload_by_cli(self, before: MasterState, what: str, deadline: Deadline) -> None:
        delays = backoff(CLI_FIRST_DELAY, cap=CLI_MAX_DELAY)
        sent = False
        last = ""
        while True:
            answer = self._mcli(SHOW_PROC if sent else RELOAD, what)
            last = answer.reason or last
            if not sent:
                sent = answer.sent
            elif answer.complete:
                outcome = reload_outcome(before, parse_show_proc(answer.answer, f"{what}: show proc"))
                if outcome == "loaded":
                    return
                if outcome == "failed":
                    text = self._reload_log()
                    raise ServiceError(
                        f"haproxy could not load the new configuration of container {self.container} (the previous one keeps serving):\n"
                        + "\n".join(haproxy_messages(text)),
                        {"haproxy_output": text.splitlines()},
                    )
            if deadline.expired:
                raise ServiceError(
                    f"haproxy in container {self.container} did not finish its reload within {self.reload_timeout:g}s"
                    f" ({'reload sent' if sent else 'reload not accepted'}; last: {last or 'no answer'})"
                )
            self._sleep(min(next(delays), max(deadline.remaining, 0.0)))

    def _mcli(self, line: str, what: str) -> SocketAnswer:
        answer = socket_line(self.agent, self.container, MASTER_SOCKET, line, timeout=HELPER_TIMEOUT)
        if answer is None:
            raise AgentError(f"{what}: hyper-exec went away from the guest")
        return answer

    def _master_state(self, what: str, deadline: Deadline) -> Optional[MasterState]:
        """The master's state before a reload; None without a master socket or without hyper-exec (reload by signal)."""
        delays = backoff(CLI_FIRST_DELAY, cap=CLI_MAX_DELAY)
        while True:
            answer = socket_line(self.agent, self.container, MASTER_SOCKET, SHOW_PROC, timeout=HELPER_TIMEOUT)
            if answer is None or answer.unusable:
                return None
            if answer.complete:
                return parse_show_proc(answer.answer, f"{what}: show proc")
            if deadline.expired:
                raise ServiceError(f"haproxy's master in container {self.container} did not answer on {MASTER_SOCKET}: {answer.reason}")
            self._sleep(min(next(delays), max(deadline.remaining, 0.0)))

    def _reload_log(self) -> str:
        """The container's log since the master's last ``Reloading HAProxy`` (its end, bounded)."""
        text = _text(self._run(["tail", "-c", str(LOG_TAIL_BYTES), self._log], "reading the haproxy log").stdout)
        at = text.rfind(RELOADING)
        return text[at:] if at >= 0 else text

    def reload_by_signal(self) -> None:
        """SIGUSR2 to the master (the container's process); done when it has forked a new worker.

        The master re-reads haproxy.cfg, takes the listening sockets over from the running worker
        (the stats socket's ``expose-fd listeners``), forks a new worker and re-executes itself; the
        old worker finishes its connections. A signal that arrives while the master re-executes
        itself is lost, so it is sent again after RESIGNAL_SECONDS without a new worker (one reload
        too many does no harm). When the configuration cannot start, the master says
        ``Loading failure!`` in the container's log and the old worker keeps serving.
        """
        master = self._master_pid()
        deadline = Deadline(self.reload_timeout, self._clock)
        delays = backoff(0.1, cap=1.0)
        before = self._workers(master)
        # A master that has not forked its first worker yet is still starting (a container just
        # started, seen on a fast-booting guest; its master socket is not there yet either, so
        # reload() came here): a signal now is lost and that first worker would pass for the
        # reload's. Wait for it first.
        while not before and not deadline.expired:
            self._sleep(min(next(delays), max(deadline.remaining, 0.0)))
            before = self._workers(master)
        offset = self._log_size()
        signal_at = self._clock()
        while True:
            if self._clock() >= signal_at:
                # The master is the container's process (pid from crun state): a bare kill in the guest is
                # what crun kill does, without crun's ~200 ms start under TCG at every (re)send.
                self._run(["kill", "-USR2", str(master)], "signalling the haproxy master")
                signal_at = self._clock() + RESIGNAL_SECONDS
            if self._workers(master) - before:
                self._settle(offset)
                return
            text = self._log_since(offset)
            if RELOAD_FAILED in text:
                raise ServiceError(
                    f"haproxy could not load the new configuration of container {self.container} (the previous one keeps serving):\n"
                    + "\n".join(haproxy_messages(text)),
                    {"haproxy_output": text.splitlines()},
                )
            if deadline.expired:
                raise ServiceError(
                    f"haproxy in container {self.container} did not finish its reload within {self.reload_timeout:g}s",
                    {"haproxy_output": text.splitlines()},
                )
            self._sleep(min(next(delays), max(deadline.remaining, 0.0)))

    def _settle(self, offset: int) -> None:
        """Wait (at most SETTLE_SECONDS, never failing) until the master is back from its re-execution.

        The reload is done by then; waiting here keeps the next reload's signal from being lost
        (and costing RESIGNAL_SECONDS), as it was for back-to-back reloads under TCG.
        """
        deadline = Deadline(SETTLE_SECONDS, self._clock)
        delays = backoff(0.05, cap=0.5)
        while not deadline.expired:
            text = self._log_since(offset)
            done = text.rfind(RELOAD_OK)
            if done >= 0 and MASTER_READY in text[done:]:
                return
            self._sleep(min(next(delays), max(deadline.remaining, 0.0)))
