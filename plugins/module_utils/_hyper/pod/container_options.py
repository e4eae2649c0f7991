# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The per-container options docker_container and podman_container users know, checked and typed.

``ContainerOptions`` (``cpus``, ``memory``, ``pids_limit``, ``cap_add``/``cap_drop``, ``read_only``,
``no_new_privileges``, ``ulimits``, ``sysctls``, ``tmpfs``, ``labels``, ``hostname``, ``healthcheck``)
and its stored (JSON) form, kept flat in the container's entry of the stored spec, only the keys
that are set, so a container without them is stored as it was. ``pod/container_checks.py`` makes
one from the user's options; ``images/runtime_options.py`` turns it into the OCI runtime config.

Light on purpose: ``pod/stored.py`` imports it (and so the exec and connection paths do): the
types, the stored form and the few rules the OCI config needs; nothing of the library but errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

OPTION_KEYS = (
    "cpus",
    "memory",
    "pids_limit",
    "cap_add",
    "cap_drop",
    "read_only",
    "no_new_privileges",
    "ulimits",
    "sysctls",
    "tmpfs",
    "labels",
    "hostname",
    "healthcheck",
)

MIB = 1 << 20
# docker's minimum; below it a container hardly starts.
MIN_MEMORY = 6 * MIB
MAX_MEMORY = 1 << 40
MAX_CPUS = 255.0
MIN_CPUS = 0.01
CPU_PERIOD = 100_000  # microseconds, the kernel's default cpu.max period
MAX_PIDS = 4_194_304  # pid_max's ceiling
UNLIMITED = -1
RLIM_INFINITY = (1 << 64) - 1
NR_OPEN = 1 << 20  # the kernel's fs.nr_open default: a higher nofile makes setrlimit fail
MAX_SYSCTL_VALUE = 256
MAX_LIST = 64
# Labels under this prefix are the collection's own annotations (the healthcheck's).
RESERVED_LABEL_PREFIX = "hyper.pods."


# Linux 6.1's capabilities (include/uapi/linux/capability.h), all known to the guest's crun and libcap.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
ALL = "ALL"
# docker's ulimit names → the OCI rlimit types.
ULIMITS = {
    "as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}  # fmt: skip
# Sysctls a container may set: those of its own IPC namespace (crun's list) and of the network namespace.
IPC_SYSCTLS = frozenset(
    ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
)
NET_PREFIX = "net."
MQUEUE_PREFIX = "fs.mqueue."
# tmpfs mount options a container may give (crun and the kernel's tmpfs take them); docker's defaults first.
TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")
TMPFS_FLAGS = frozenset(
    ("ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "nodiratime", "relatime", "strictatime", "sync", "async")
)

# Healthchecks: docker's defaults; the guest's clock has centiseconds.
HEALTH_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}
HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "failure_action")
FAILURE_ACTIONS = ("none", "restart")
MIN_HEALTH_INTERVAL = 1.0
MAX_HEALTH_SECONDS = 86400.0
MAX_HEALTH_RETRIES = 1000
MAX_TEST_BYTES = 16384


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int  # UNLIMITED (-1) for no limit
    hard: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "soft": self.soft, "hard": self.hard}


@dataclass(frozen=True)
class TmpfsMount:
    path: str
    options: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "options": list(self.options)}


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]  # an argv, run in the container with crun exec
    interval: float
    timeout: float
    retries: int
    start_period: float
    failure_action: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "test": list(self.test),
            "interval": self.interval,
            "timeout": self.timeout,
            "retries": self.retries,
            "start_period": self.start_period,
            "failure_action": self.failure_action,
        }


@dataclass(frozen=True)
class ContainerOptions:
    cpus: Optional[float] = None
    memory: Optional[int] = None  # bytes
    pids_limit: Optional[int] = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    read_only: bool = False
    no_new_privileges: bool = False
    ulimits: tuple[Ulimit, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    hostname: Optional[str] = None
    healthcheck: Optional[Healthcheck] = None

    def to_json(self) -> dict[str, Any]:
        """The set options only, JSON-ready (merged into the container's stored entry)."""
        out: dict[str, Any] = {}
        for key, value in (("cpus", self.cpus), ("memory", self.memory), ("pids_limit", self.pids_limit), ("hostname", self.hostname)):
            if value is not None:
                out[key] = value
        if self.cap_add:
            out["cap_add"] = list(self.cap_add)
        if self.cap_drop:
            out["cap_drop"] = list(self.cap_drop)
        if self.read_only:
            out["read_only"] = True
        if self.no_new_privileges:
            out["no_new_privileges"] = True
        if self.ulimits:
            out["ulimits"] = [u.to_json() for u in self.ulimits]
        if self.sysctls:
            out["sysctls"] = dict(self.sysctls)
        if self.tmpfs:
            out["tmpfs"] = [t.to_json() for t in self.tmpfs]
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.healthcheck is not None:
            out["healthcheck"] = self.healthcheck.to_json()
        return out

    def view(self) -> dict[str, Any]:
        """Every option, set or not, for hyper_pod_info (a stable shape)."""
        return {
            "cpus": self.cpus,
            "memory": self.memory,
            "pids_limit": self.pids_limit,
            "cap_add": list(self.cap_add),
            "cap_drop": list(self.cap_drop),
            "read_only": self.read_only,
            "no_new_privileges": self.no_new_privileges,
            "ulimits": [u.to_json() for u in self.ulimits],
            "sysctls": dict(self.sysctls),
            "tmpfs": [t.to_json() for t in self.tmpfs],
            "labels": dict(self.labels),
            "hostname": self.hostname,
            "healthcheck": self.healthcheck.to_json() if self.healthcheck else None,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any], where: str) -> ContainerOptions:
        """Read the options back from a stored container entry; ValueError names what is malformed."""
        reader = _StoredReader(item, where)
        health = item.get("healthcheck")
        healthcheck = None
        if health is not None:
            h = _StoredReader(health if isinstance(health, Mapping) else {}, f"{where}.healthcheck")
            if not isinstance(health, Mapping):
                raise ValueError(f"{where}.healthcheck is not an object")
            healthcheck = Healthcheck(
                test=h.strings("test") or (),
                interval=h.number("interval") or HEALTH_DEFAULTS["interval"],
                timeout=h.number("timeout") or HEALTH_DEFAULTS["timeout"],
                retries=int(h.number("retries") or HEALTH_DEFAULTS["retries"]),
                start_period=h.number("start_period") or 0.0,
                failure_action=h.text("failure_action") or "none",
            )
        return cls(
            cpus=reader.number("cpus"),
            memory=reader.integer("memory"),
            pids_limit=reader.integer("pids_limit"),
            cap_add=reader.strings("cap_add") or (),
            cap_drop=reader.strings("cap_drop") or (),
            read_only=reader.flag("read_only"),
            no_new_privileges=reader.flag("no_new_privileges"),
            ulimits=tuple(Ulimit(u.text("name") or "", int(u.integer("soft") or 0), int(u.integer("hard") or 0)) for u in reader.objects("ulimits")),
            sysctls=reader.pairs("sysctls"),
            tmpfs=tuple(TmpfsMount(t.text("path") or "", t.strings("options") or ()) for t in reader.objects("tmpfs")),
            labels=reader.pairs("labels"),
            hostname=reader.text("hostname"),
            healthcheck=healthcheck,
        )


class _StoredReader:
    """Typed reads of a stored JSON object; a ValueError naming the key for a wrong type."""

    def __init__(self, item: Mapping[str, Any], where: str) -> None:
        self.item = item
        self.where = where

    def _bad(self, key: str, kind: str) -> ValueError:
        return ValueError(f"{self.where}.{key} is {type(self.item.get(key)).__name__}, not {kind}")

    def number(self, key: str) -> Optional[float]:
        value = self.item.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(key, "a number")
        return float(value)

    def integer(self, key: str) -> Optional[int]:
        value = self.item.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        return value

    def flag(self, key: str) -> bool:
        value = self.item.get(key, False)
        if not isinstance(value, bool):
            raise self._bad(key, "a boolean")
        return value

    def text(self, key: str) -> Optional[str]:
        value = self.item.get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def strings(self, key: str) -> Optional[tuple[str, ...]]:
        value = self.item.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)

    def pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self.item.get(key) or {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self._bad(key, "a mapping of strings")
        return tuple(value.items())

    def objects(self, key: str) -> list[_StoredReader]:
        value = self.item.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self._bad(key, "a list of objects")
        return [_StoredReader(v, f"{self.where}.{key}[{i}]") for i, v in enumerate(value)]


def capability_set(default: Sequence[str], cap_add: Sequence[str], cap_drop: Sequence[str]) -> list[str]:
    """docker's rule (moby's TweakCapabilities): ALL in cap_add is every capability but the dropped ones;
    ALL in cap_drop keeps only cap_add; otherwise the default set minus cap_drop plus cap_add."""
    if ALL in cap_add:
        return [c for c in CAPABILITIES if c not in cap_drop]
    if ALL in cap_drop:
        return [c for c in CAPABILITIES if c in cap_add]
    kept = [c for c in default if c not in cap_drop]
    return kept + [c for c in cap_add if c not in kept]


def sysctl_kind(key: str) -> Optional[str]:
    """``ipc`` or ``net`` for a sysctl a container may set, None for one it may not."""
    if key.startswith(NET_PREFIX):
        return "net"
    if key in IPC_SYSCTLS or key.startswith(MQUEUE_PREFIX):
        return "ipc"
    return None
