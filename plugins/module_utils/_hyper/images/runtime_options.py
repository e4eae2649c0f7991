# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A container's options (pod/container_options.py) in its OCI runtime config, the one crun gets in the guest.

Pure: ``apply_options`` takes the config ``bundle.runtime_config`` made and returns a new one.

- ``cpus`` → ``linux.resources.cpu`` quota/period (cgroup v2 ``cpu.max``); ``memory`` →
  ``linux.resources.memory`` limit and swap (= limit: no swap; ``memory.max``, ``memory.swap.max``
  0), so the kernel's OOM killer acts inside the container's cgroup, not on the guest;
  ``pids_limit`` → ``linux.resources.pids`` (``pids.max``).
- ``cap_add``/``cap_drop`` → the bounding, effective and permitted sets (docker's rule);
  ``read_only`` → ``root.readonly``; ``no_new_privileges`` → ``process.noNewPrivileges``;
  ``ulimits`` → ``process.rlimits``; ``tmpfs`` → tmpfs mounts; ``labels`` → annotations.
- ``sysctls``: IPC ones (the container has its own IPC namespace) → ``linux.sysctl``. crun refuses
  net.* there, since the container has no network namespace of its own (it shares the VM's with the
  pod): they are set in the VM's namespace by a ``createRuntime`` hook (``sysctl -w``, an argv),
  which runs in the runtime's namespaces, before the container's process starts.
- ``healthcheck`` → the annotation ``hyper.pods.healthcheck``, read by the guest's supervisor
  (``hyper-container``): ``1 INTERVAL TIMEOUT RETRIES START_PERIOD ACTION ARG64...`` — seconds with
  at most two decimals, the action ``none`` or ``restart``, each argv word in base64 (``-`` for an empty one), so the guest's
  shell reads it with one ``sed`` and no JSON parser.
"""

from __future__ import annotations

import base64
import copy
from typing import Any, Mapping

from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import (
    CPU_PERIOD,
    RLIM_INFINITY,
    ULIMITS,
    UNLIMITED,
    ContainerOptions,
    Healthcheck,
    capability_set,
    sysctl_kind,
)

HEALTH_ANNOTATION = "hyper.pods.healthcheck"
HEALTH_FORMAT = "1"
# busybox's sysctl in the guest image (roles/guest_image: every applet is linked under /usr/sbin or /sbin).
SYSCTL_PATH = "/bin/busybox"
CAP_SETS = ("bounding", "effective", "permitted")


def seconds_word(seconds: float) -> str:
    """Seconds as the guest script reads them (``seconds_cs``): ``30``, ``2.5``, ``0.25``."""
    text = f"{seconds:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def health_annotation(check: Healthcheck) -> str:
    words = [
        HEALTH_FORMAT,
        seconds_word(check.interval),
        seconds_word(check.timeout),
        str(check.retries),
        seconds_word(check.start_period),
        check.failure_action,
    ]
    # "-" stands for an empty word (its base64 would be empty and vanish in the guest's word splitting).
    words.extend(base64.b64encode(arg.encode("utf-8")).decode("ascii") if arg else "-" for arg in check.test)
    return " ".join(words)


def _rlimit(value: int) -> int:
    return RLIM_INFINITY if value == UNLIMITED else value


def apply_options(config: Mapping[str, Any], options: ContainerOptions) -> dict[str, Any]:
    """``config`` with the container's options applied; unset options leave it as it was."""
    out: dict[str, Any] = copy.deepcopy(dict(config))
    process: dict[str, Any] = out.setdefault("process", {})
    linux: dict[str, Any] = out.setdefault("linux", {})

    resources: dict[str, Any] = dict(linux.get("resources") or {})
    if options.cpus is not None:
        resources["cpu"] = {"quota": max(1000, round(options.cpus * CPU_PERIOD)), "period": CPU_PERIOD}
    if options.memory is not None:
        resources["memory"] = {"limit": options.memory, "swap": options.memory}
    if options.pids_limit is not None:
        resources["pids"] = {"limit": options.pids_limit}
    if resources:
        linux["resources"] = resources

    if options.cap_add or options.cap_drop:
        current = process.get("capabilities") or {}
        default = list(current.get("bounding") or [])
        caps = capability_set(default, options.cap_add, options.cap_drop)
        process["capabilities"] = {**current, **{kind: list(caps) for kind in CAP_SETS}}
        for kind in ("inheritable", "ambient"):
            if kind in process["capabilities"]:
                process["capabilities"][kind] = [c for c in process["capabilities"][kind] if c in caps]
    if options.no_new_privileges:
        process["noNewPrivileges"] = True
    if options.read_only:
        out["root"] = {**(out.get("root") or {}), "readonly": True}

    if options.ulimits:
        given = {ULIMITS[u.name]: u for u in options.ulimits}
        kept = [r for r in process.get("rlimits") or [] if not (isinstance(r, dict) and r.get("type") in given)]
        process["rlimits"] = kept + [{"type": kind, "soft": _rlimit(u.soft), "hard": _rlimit(u.hard)} for kind, u in given.items()]

    ipc = {key: value for key, value in options.sysctls if sysctl_kind(key) == "ipc"}
    net = [(key, value) for key, value in options.sysctls if sysctl_kind(key) == "net"]
    if ipc:
        linux["sysctl"] = {**(linux.get("sysctl") or {}), **ipc}
    if net:
        hooks: dict[str, Any] = dict(out.get("hooks") or {})
        hooks["createRuntime"] = list(hooks.get("createRuntime") or []) + [
            {"path": SYSCTL_PATH, "args": ["sysctl", "-w", f"{key}={value}"]} for key, value in net
        ]
        out["hooks"] = hooks

    if options.tmpfs:
        mounts = [m for m in out.get("mounts") or [] if not (isinstance(m, dict) and m.get("destination") in {t.path for t in options.tmpfs})]
        mounts.extend({"destination": t.path, "type": "tmpfs", "source": "tmpfs", "options": list(t.options)} for t in options.tmpfs)
        out["mounts"] = mounts

    annotations: dict[str, Any] = dict(out.get("annotations") or {})
    annotations.update(options.labels)
    annotations.pop(HEALTH_ANNOTATION, None)  # only ever the host's own
    if options.healthcheck is not None:
        annotations[HEALTH_ANNOTATION] = health_annotation(options.healthcheck)
    if annotations or "annotations" in out:
        out["annotations"] = annotations
    return out
