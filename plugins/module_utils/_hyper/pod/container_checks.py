# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The user's per-container options checked: docker's forms accepted, every bad value a SpecError naming the option and the value.

``normalise_options`` turns a container's mapping into ``ContainerOptions`` (pod/container_options.py); pure.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import (
    ALL,
    CAPABILITIES,
    FAILURE_ACTIONS,
    HEALTH_DEFAULTS,
    HEALTH_KEYS,
    MAX_CPUS,
    MAX_HEALTH_RETRIES,
    MAX_HEALTH_SECONDS,
    MAX_MEMORY,
    MAX_PIDS,
    MAX_SYSCTL_VALUE,
    MAX_TEST_BYTES,
    MIB,
    MIN_CPUS,
    MIN_HEALTH_INTERVAL,
    MIN_MEMORY,
    NR_OPEN,
    RESERVED_LABEL_PREFIX,
    RLIM_INFINITY,
    TMPFS_DEFAULTS,
    TMPFS_FLAGS,
    ULIMITS,
    UNLIMITED,
    ContainerOptions,
    Healthcheck,
    TmpfsMount,
    Ulimit,
    sysctl_kind,
)

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": MIB, "g": 1 << 30, "t": 1 << 40}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$")
_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$")
_TMPFS_PATH = re.compile(r"^/[^\x00:,]*$")
_OPPOSITE = {"nosuid": "suid", "suid": "nosuid", "nodev": "dev", "dev": "nodev", "noexec": "exec", "exec": "noexec", "ro": "rw", "rw": "ro"}
_TMPFS_VALUES = {
    "size": re.compile(r"^\d+[kmg%]?$"),
    "nr_blocks": re.compile(r"^\d+[kmg]?$"),
    "nr_inodes": re.compile(r"^\d+[kmg]?$"),
    "mode": re.compile(r"^[0-7]{3,4}$"),
    "uid": re.compile(r"^\d{1,10}$"),
    "gid": re.compile(r"^\d{1,10}$"),
}


def parse_memory(value: object, option: str) -> int:
    """Bytes of a memory limit: a number is MiB (as the pod's ``memory``); with a unit B, K, M, G, T as docker takes it."""
    if isinstance(value, bool) or value is None:
        raise SpecError(option, value, "must be MiB (a number) or a size with a unit, such as 64m or 1g")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise SpecError(option, value, "must be a finite number of MiB")
        amount, unit = float(value), MIB
    elif isinstance(value, str):
        match = _MEMORY.match(value)
        if not match:
            raise SpecError(option, value, "must be MiB (a number) or a size with a unit B, K, M, G or T, such as 64m or 1g")
        amount = float(match.group(1))
        unit = _UNITS[match.group(2).lower()] if match.group(2) or value.strip().lower().endswith("b") else MIB
    else:
        raise SpecError(option, value, "must be MiB (a number) or a size with a unit, such as 64m or 1g")
    size = int(amount * unit)
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise SpecError(option, value, f"must be between 6 MiB and 1 TiB (it is {size} bytes)")
    return size


def parse_duration(value: object, option: str, low: float, high: float) -> float:
    """Seconds of a duration: a number of seconds, or docker's form (``30s``, ``1m30s``, ``500ms``, ``1h``); centisecond precision."""
    if isinstance(value, bool) or value is None:
        raise SpecError(option, value, "must be seconds or a duration such as 30s, 1m30s or 500ms")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise SpecError(option, value, "must be seconds or a duration such as 30s, 1m30s or 500ms (units h, m, s, ms)")
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise SpecError(option, value, "must be seconds or a duration such as 30s, 1m30s or 500ms")
    if not math.isfinite(seconds) or not low <= seconds <= high:
        raise SpecError(option, value, f"must be between {low:g} and {high:g} seconds")
    return round(seconds, 2)


def _capability(value: object, option: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(option, value, "capabilities are names such as NET_ADMIN or CAP_NET_ADMIN, or ALL")
    name = value.strip().upper()
    if name == ALL:
        return ALL
    name = name if name.startswith("CAP_") else "CAP_" + name
    if name not in CAPABILITIES:
        raise SpecError(option, value, f"unknown capability; use ALL or one of {', '.join(c[4:] for c in CAPABILITIES)}")
    return name


def _capabilities(value: object, option: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SpecError(option, value, "must be a list of capability names")
    return tuple(dict.fromkeys(_capability(item, option) for item in value))


def _limit_value(value: object, option: str) -> int:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("unlimited", "-1"):
            return UNLIMITED
        if not text.isdigit():
            raise SpecError(option, value, "limits are whole numbers, -1 or unlimited")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED or value >= RLIM_INFINITY:
        raise SpecError(option, value, "limits are whole numbers, -1 or unlimited")
    return value


def _ulimit(item: object, option: str) -> Ulimit:
    if isinstance(item, str):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise SpecError(option, item, "must be NAME:SOFT[:HARD] (docker's form, such as nofile:1024:2048) or a mapping with name, soft, hard")
        name, soft_text = parts[0], parts[1]
        hard_text = parts[2] if len(parts) == 3 else soft_text
        soft, hard = _limit_value(soft_text, option), _limit_value(hard_text, option)
    elif isinstance(item, Mapping):
        unknown = sorted(set(item) - {"name", "soft", "hard"})
        if unknown or item.get("name") is None or item.get("soft") is None:
            raise SpecError(option, dict(item), "a mapping needs name and soft (and may give hard); no other keys")
        name = item["name"]
        soft = _limit_value(item["soft"], option)
        hard = _limit_value(item["hard"], option) if item.get("hard") is not None else soft
    else:
        raise SpecError(option, item, "must be NAME:SOFT[:HARD] or a mapping with name, soft, hard")
    if not isinstance(name, str) or name.lower() not in ULIMITS:
        raise SpecError(option, item, f"unknown limit {name!r}; use one of {', '.join(sorted(ULIMITS))}")
    name = name.lower()
    if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
        raise SpecError(option, item, "the soft limit must not be above the hard limit")
    if name == "nofile" and any(v == UNLIMITED or v > NR_OPEN for v in (soft, hard)):
        raise SpecError(option, item, f"nofile cannot be above {NR_OPEN} (the kernel's fs.nr_open) nor unlimited")
    return Ulimit(name, soft, hard)


def _ulimits(value: object, option: str) -> tuple[Ulimit, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):  # {nofile: "1024:2048"} or {nofile: {soft, hard}}
        items: list[object] = []
        for name, limit in value.items():
            items.append({"name": name, **limit} if isinstance(limit, Mapping) else f"{name}:{limit}")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SpecError(option, value, "must be a list of NAME:SOFT[:HARD] or a mapping of names to SOFT[:HARD]")
    limits: dict[str, Ulimit] = {}
    for index, item in enumerate(items):
        limit = _ulimit(item, f"{option}[{index}]")
        if limit.name in limits:
            raise SpecError(f"{option}[{index}]", item, f"{limit.name} is given twice")
        limits[limit.name] = limit
    return tuple(limits.values())


def _sysctls(value: object, option: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(option, value, "must be a mapping of sysctl names to values")
    pairs: dict[str, str] = {}
    for raw_key, raw_value in value.items():
        key = raw_key.replace("/", ".") if isinstance(raw_key, str) else raw_key
        if not isinstance(key, str) or not _SYSCTL_KEY.fullmatch(key):
            raise SpecError(option, raw_key, "sysctl names are dotted words such as net.ipv4.ip_forward")
        if sysctl_kind(key) is None:
            raise SpecError(
                option,
                raw_key,
                "is not namespaced: a container may set net.*, fs.mqueue.* and kernel.msgmax, msgmnb, msgmni, sem, shmall, shmmax, shmmni, "
                "shm_rmid_forced (the others would change the whole guest kernel)",
            )
        if isinstance(raw_value, bool) or not isinstance(raw_value, (str, int)):
            raise SpecError(f"{option}.{key}", raw_value, "must be a string or a whole number (quote true/false)")
        text = str(raw_value)
        if not text or len(text) > MAX_SYSCTL_VALUE or any(ord(ch) < 32 and ch != "\t" for ch in text):
            raise SpecError(f"{option}.{key}", raw_value, f"must be one line of 1-{MAX_SYSCTL_VALUE} characters")
        if key in pairs:
            raise SpecError(option, raw_key, "is given twice")
        pairs[key] = text
    return tuple(sorted(pairs.items()))


def check_pod_sysctls(containers: Sequence[tuple[str, ContainerOptions]]) -> None:
    """net.* sysctls set the pod's one network namespace (its containers share the VM's): two containers may not disagree."""
    seen: dict[str, tuple[str, str]] = {}
    for name, options in containers:
        for key, value in options.sysctls:
            if sysctl_kind(key) != "net":
                continue
            if key in seen and seen[key][1] != value:
                raise SpecError(
                    f"containers[{name}].sysctls.{key}",
                    value,
                    f"containers[{seen[key][0]}] sets it to {seen[key][1]!r}; net.* sysctls are the pod's (its containers share one network namespace)",
                )
            seen.setdefault(key, (name, value))


def _tmpfs_options(value: object, option: str) -> tuple[str, ...]:
    if value is None or value == "":
        given: list[str] = []
    elif isinstance(value, str):
        given = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        given = [part.strip() for part in value]
    else:
        raise SpecError(option, value, "mount options are a comma-separated string or a list, such as size=64m,mode=1777")
    flags: list[str] = []
    values: dict[str, str] = {}
    for part in given:
        key, sep, val = part.partition("=")
        if sep:
            pattern = _TMPFS_VALUES.get(key)
            if pattern is None or not pattern.fullmatch(val):
                raise SpecError(option, part, f"unknown or malformed tmpfs option; use {', '.join(sorted(_TMPFS_VALUES))} (size=64m, mode=1777 ...)")
            values[key] = val
        elif part in TMPFS_FLAGS:
            flags = [f for f in flags if f not in (part, _OPPOSITE.get(part))] + [part]
        else:
            raise SpecError(option, part, f"unknown tmpfs option; flags are {', '.join(sorted(TMPFS_FLAGS))}")
    defaults = [d for d in TMPFS_DEFAULTS if d not in flags and _OPPOSITE[d] not in flags]
    return tuple(defaults + flags + [f"{key}={val}" for key, val in values.items()])


def _tmpfs(value: object, option: str) -> tuple[TmpfsMount, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)):
        raise SpecError(option, value, "must be a list of PATH[:OPTIONS] strings (docker's form) or mappings with path and options")
    mounts: list[TmpfsMount] = []
    for index, item in enumerate(value):
        where = f"{option}[{index}]"
        path: object
        raw_opts: object
        if isinstance(item, str):
            path, _sep, raw_opts = item.partition(":")
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - {"path", "options"})
            if unknown:
                raise SpecError(where, dict(item), f"unknown keys {', '.join(unknown)}; a tmpfs mount has path and options")
            path, raw_opts = item.get("path"), item.get("options")
        else:
            raise SpecError(where, item, "must be PATH[:OPTIONS] or a mapping with path and options")
        if not isinstance(path, str) or not _TMPFS_PATH.fullmatch(path) or path == "/" or "/../" in path + "/" or "/./" in path + "/":
            raise SpecError(f"{where}.path", path, "must be an absolute path other than /, without '..', ':' or ','")
        path = path.rstrip("/") or "/"
        if any(m.path == path for m in mounts):
            raise SpecError(f"{where}.path", path, "is given twice")
        mounts.append(TmpfsMount(path, _tmpfs_options(raw_opts, f"{where}.options")))
    return tuple(mounts)


def _labels(value: object, option: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(option, value, "must be a mapping of strings to strings")
    pairs = []
    for key, val in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise SpecError(option, key, "keys must be letters, digits, '.', '_', '/', '-' (starting and ending with a letter or digit)")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise SpecError(option, key, f"keys starting with {RESERVED_LABEL_PREFIX} are the collection's own")
        if not isinstance(val, str) or "\x00" in val:
            raise SpecError(f"{option}.{key}", val, "must be a string (quote numbers and booleans)")
        pairs.append((key, val))
    return tuple(sorted(pairs))


def _hostname(value: object, option: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 253 or not all(_HOST_LABEL.fullmatch(part) for part in value.split(".")):
        raise SpecError(option, value, "must be an RFC 1123 host name: dot-separated labels of 1-63 letters, digits and '-'")
    return value


def health_test(value: object, option: str) -> Optional[tuple[str, ...]]:
    """docker's ``test``: [CMD, argv...], [CMD-SHELL, command], a string (CMD-SHELL), a plain argv, or [NONE] (no check: None)."""
    if isinstance(value, str):
        value = ["CMD-SHELL", value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise SpecError(option, value, "must be an argv list ([CMD, ...] or a plain argv), [CMD-SHELL, COMMAND], a shell command string or [NONE]")
    head = value[0].upper()
    if head == "NONE":
        if len(value) != 1:
            raise SpecError(option, value, "[NONE] takes nothing after it")
        return None
    if head == "CMD-SHELL":
        if len(value) != 2 or not value[1].strip():
            raise SpecError(option, value, "[CMD-SHELL, COMMAND] takes exactly one command string")
        argv: tuple[str, ...] = ("/bin/sh", "-c", value[1])
    elif head == "CMD":
        argv = tuple(value[1:])
    else:
        argv = tuple(value)
    if not argv or not argv[0]:
        raise SpecError(option, value, "has no command to run")
    if any("\x00" in arg for arg in argv) or sum(len(a.encode("utf-8")) + 1 for a in argv) > MAX_TEST_BYTES:
        raise SpecError(option, value, f"must not contain NUL characters and must fit in {MAX_TEST_BYTES} bytes")
    return argv


def _healthcheck(value: object, option: str, restart_policy: str) -> Optional[Healthcheck]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(option, value, "must be a mapping with test (and interval, timeout, retries, start_period, failure_action)")
    unknown = sorted(key for key in set(value) - set(HEALTH_KEYS) if value[key] is not None)
    if unknown:
        raise SpecError(option, unknown, f"unknown keys; known: {', '.join(HEALTH_KEYS)}")
    if value.get("test") is None:
        raise SpecError(f"{option}.test", None, "is required: the command that checks the container")
    test = health_test(value["test"], f"{option}.test")
    if test is None:
        return None

    def seconds(key: str, low: float) -> float:
        given = value.get(key)
        return float(HEALTH_DEFAULTS[key]) if given is None else parse_duration(given, f"{option}.{key}", low, MAX_HEALTH_SECONDS)

    retries = value.get("retries")
    if retries is None:
        retries = HEALTH_DEFAULTS["retries"]
    elif isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= MAX_HEALTH_RETRIES:
        raise SpecError(f"{option}.retries", retries, f"must be a whole number from 1 to {MAX_HEALTH_RETRIES}")
    action = value.get("failure_action") or "none"
    if action not in FAILURE_ACTIONS:
        raise SpecError(f"{option}.failure_action", action, f"must be one of {', '.join(FAILURE_ACTIONS)}")
    if action == "restart" and restart_policy == "never":
        raise SpecError(
            f"{option}.failure_action",
            action,
            "kills an unhealthy container so that its restart_policy starts it again; give restart_policy on-failure or always",
        )
    interval, timeout = seconds("interval", MIN_HEALTH_INTERVAL), seconds("timeout", MIN_HEALTH_INTERVAL)
    return Healthcheck(test, interval, timeout, int(retries), seconds("start_period", 0.0), action)


def normalise_options(value: Mapping[str, Any], where: str, restart_policy: str = "never") -> ContainerOptions:
    """The container's options (``value`` is its whole mapping; other keys are ignored) → ContainerOptions."""
    cpus = value.get("cpus")
    if cpus is not None:
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float, str)):
            raise SpecError(f"{where}.cpus", cpus, "must be a number of CPUs such as 0.5 or 2")
        try:
            number = float(cpus)
        except ValueError:
            raise SpecError(f"{where}.cpus", cpus, "must be a number of CPUs such as 0.5 or 2") from None
        if not math.isfinite(number) or not MIN_CPUS <= number <= MAX_CPUS:
            raise SpecError(f"{where}.cpus", cpus, f"must be between {MIN_CPUS} and {MAX_CPUS:g}")
        cpus = round(number, 3)
    pids = value.get("pids_limit")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int) or not 1 <= pids <= MAX_PIDS):
        raise SpecError(f"{where}.pids_limit", pids, f"must be a whole number from 1 to {MAX_PIDS}")
    flags = {}
    for key in ("read_only", "no_new_privileges"):
        flag = value.get(key)
        if flag is not None and not isinstance(flag, bool):
            raise SpecError(f"{where}.{key}", flag, "must be true or false")
        flags[key] = bool(flag)
    cap_add = _capabilities(value.get("cap_add"), f"{where}.cap_add")
    cap_drop = _capabilities(value.get("cap_drop"), f"{where}.cap_drop")
    both = sorted(set(cap_add) & set(cap_drop))
    if both:
        raise SpecError(f"{where}.cap_add", list(cap_add), f"{', '.join(both)} is also in cap_drop; give a capability in one of them")
    return ContainerOptions(
        cpus=cpus,
        memory=None if value.get("memory") is None else parse_memory(value["memory"], f"{where}.memory"),
        pids_limit=pids,
        cap_add=cap_add,
        cap_drop=cap_drop,
        read_only=flags["read_only"],
        no_new_privileges=flags["no_new_privileges"],
        ulimits=_ulimits(value.get("ulimits"), f"{where}.ulimits"),
        sysctls=_sysctls(value.get("sysctls"), f"{where}.sysctls"),
        tmpfs=_tmpfs(value.get("tmpfs"), f"{where}.tmpfs"),
        labels=_labels(value.get("labels"), f"{where}.labels"),
        hostname=_hostname(value.get("hostname"), f"{where}.hostname"),
        healthcheck=_healthcheck(value.get("healthcheck"), f"{where}.healthcheck", restart_policy),
    )


def check_pod_limits(name: str, options: ContainerOptions, vcpus: Optional[int], memory_mib: Optional[int]) -> None:
    """A container's cpus and memory against its pod's VM (None: not known here): a limit above what the VM has is a mistake."""
    if options.cpus is not None and vcpus is not None and options.cpus > vcpus:
        raise SpecError(f"containers[{name}].cpus", options.cpus, f"is more than the pod's {vcpus} vcpus")
    if options.memory is not None and memory_mib is not None and options.memory > memory_mib * MIB:
        raise SpecError(f"containers[{name}].memory", options.memory, f"bytes is more than the pod's memory ({memory_mib} MiB)")
