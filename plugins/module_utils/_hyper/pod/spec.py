# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""PodSpec and ContainerSpec: the user's pod options checked, defaults filled, and the stored (JSON) form.

``normalise_pod`` is pure: it reads no file and talks to nobody. What needs the host (image
digests, the guest image, the accelerator ``auto``) is resolved later and passed to ``to_stored``.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import check_image_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import ACCELERATOR_CHOICES
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.policy import DEFAULT_AUTOSTART, DEFAULT_POD_RESTART_POLICY, check_pod_restart_policy
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import DEFAULT_TRANSPORT, ImageRef, parse_image_ref
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import normalise_dns, normalise_networks
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.ports import normalise_ports
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_checks import check_pod_limits, check_pod_sysctls, normalise_options
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import OPTION_KEYS, ContainerOptions
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredFile, StoredMount
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import FileSpec, normalise_files, read_source, stored_file
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.scratch import (
    DEFAULT_LOG_BYTES,
    DEFAULT_SCRATCH_BYTES,
    parse_log_size,
    parse_scratch_size,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import (
    MountSpec,
    VolumeSpec,
    check_distinct_paths,
    check_root_shares,
    normalise_mounts,
    normalise_volumes,
)

STATES = ("present", "started", "stopped", "restarted", "absent")
RESTART_POLICIES = layout.RESTART_POLICIES
# hyperd's defaults.
DEFAULT_VCPUS = 1
DEFAULT_MEMORY_MIB = 128
# Measured (2026-11, TCG, default image, lz4 initrd of 6.9 MB): at 80 and 88 MiB the kernel panics
# out of memory while unpacking the initramfs; at 96 MiB it boots with 23 MiB available (the root is
# copied into a tmpfs). 128 MiB leaves ~57 MiB for containers and room for a larger initrd.
MIN_MEMORY_MIB = 128
MAX_MEMORY_MIB = 1 << 20
MAX_VCPUS = 255
DEFAULT_GUEST_IMAGE = "default"
DEFAULT_RESTART_POLICY = layout.DEFAULT_RESTART_POLICY
DEFAULT_STOP_SIGNAL = layout.DEFAULT_STOP_SIGNAL
DEFAULT_CONTAINER_STOP_TIMEOUT = layout.DEFAULT_STOP_TIMEOUT

CONTAINER_NAME = layout.CONTAINER_NAME
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?$")
# Signal names the guest's crun understands; realtime signals and aliases are left out.
SIGNALS = frozenset(s.name for s in signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_") and "RT" not in s.name)

# Pod-level fields of the stored spec that come from options; each maps to the options setting it.
FIELD_OPTIONS: dict[str, tuple[str, ...]] = {
    "hostname": ("hostname",),
    "vcpus": ("vcpus",),
    "memory": ("memory",),
    "accelerator": ("accelerator",),
    "guest": ("guest_image", "kernel", "initrd"),
    "kernel_args": ("kernel_args",),
    "labels": ("labels",),
    "containers": ("containers",),
    "volumes": ("volumes",),
    "networks": ("networks",),
    "ports": ("ports",),
    "dns": ("dns", "dns_search", "dns_options"),
    "restart_policy": ("restart_policy",),
    "autostart": ("autostart",),
    "scratch_size": ("scratch_size",),
    "log_size": ("log_size",),
}
CONTAINER_KEYS = (
    "name", "image", "command", "entrypoint", "env", "workdir", "user", "restart_policy", "stop_signal", "stop_timeout", "volumes", "files",
    *OPTION_KEYS, "env_file",
)  # fmt: skip


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    ref: ImageRef
    command: Optional[tuple[str, ...]] = None
    entrypoint: Optional[tuple[str, ...]] = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: Optional[str] = None
    user: Optional[str] = None
    restart_policy: str = DEFAULT_RESTART_POLICY
    stop_signal: str = DEFAULT_STOP_SIGNAL
    stop_timeout: int = DEFAULT_CONTAINER_STOP_TIMEOUT
    volumes: tuple[MountSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    options: ContainerOptions = field(default_factory=ContainerOptions)


@dataclass(frozen=True)
class PodSpec:
    name: str
    hostname: str
    vcpus: int = DEFAULT_VCPUS
    memory: int = DEFAULT_MEMORY_MIB
    accelerator: str = "auto"
    guest_image: Optional[str] = DEFAULT_GUEST_IMAGE
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    kernel_args: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    containers: tuple[ContainerSpec, ...] = field(default_factory=tuple)
    volumes: tuple[VolumeSpec, ...] = ()
    # Networking (network.py, ports.py): stored forms, JSON-ready.
    networks: tuple[Mapping[str, Any], ...] = ()
    ports: tuple[Mapping[str, Any], ...] = ()
    dns: Mapping[str, Any] = field(default_factory=dict)
    restart_policy: str = DEFAULT_POD_RESTART_POLICY
    autostart: bool = DEFAULT_AUTOSTART
    # The VM's scratch disk (storage/scratch.py) and each container's log bound, in bytes.
    scratch_size: int = DEFAULT_SCRATCH_BYTES
    log_size: int = DEFAULT_LOG_BYTES

    def to_stored(self, *, accelerator: str, guest: Mapping[str, Any], digests: Mapping[str, Optional[str]]) -> dict[str, Any]:
        """The JSON form kept in the domain metadata (``spec``), with host-resolved fields filled in.

        ``guest``: ``{"image", "kernel", "initrd", "initrd_sha256"}``; ``digests``: container name →
        manifest digest (None when not known yet, in check mode before a first pull).
        """
        stored: dict[str, Any] = {
            "name": self.name,
            "hostname": self.hostname,
            "vcpus": self.vcpus,
            "memory": self.memory,
            "accelerator": accelerator,
            "guest": dict(guest),
            "kernel_args": self.kernel_args,
            "labels": dict(self.labels),
            "containers": [stored_container(c, digests.get(c.name), self.name) for c in self.containers],
            "networks": [dict(n) for n in self.networks],
            "ports": [dict(p) for p in self.ports],
            "dns": {key: list(value) for key, value in self.dns.items()},
        }
        if self.volumes:
            stored["volumes"] = [volume.stored() for volume in self.volumes]
        stored["restart_policy"] = self.restart_policy
        stored["autostart"] = self.autostart
        stored["scratch_size"] = self.scratch_size
        stored["log_size"] = self.log_size
        return stored


def stored_container(container: ContainerSpec, digest: Optional[str], pod: str = "") -> dict[str, Any]:
    """The stored (JSON) form of a container, through its typed form (pod/stored.py): one definition of the shape."""
    return StoredContainer(
        name=container.name,
        image=container.image,
        image_ref=container.ref.name,
        digest=digest,
        command=container.command,
        entrypoint=container.entrypoint,
        env=container.env,
        workdir=container.workdir,
        user=container.user,
        restart_policy=container.restart_policy,
        stop_signal=container.stop_signal,
        stop_timeout=container.stop_timeout,
        volumes=tuple(StoredMount(m.name, m.path, m.read_only) for m in container.volumes),
        files=tuple(StoredFile.from_json(stored_file(pod, container.name, item), f"containers[{container.name}].files") for item in container.files),
        options=container.options,
    ).to_json()


# -- validation ----------------------------------------------------------------------------------


def _given(params: Mapping[str, Any], key: str) -> bool:
    return params.get(key) is not None


def check_hostname(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 253 or not all(_HOST_LABEL.fullmatch(part) for part in value.split(".")):
        raise SpecError("hostname", value, "must be an RFC 1123 host name: dot-separated labels of 1-63 letters, digits and '-'")
    return value


def _int(value: object, option: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(option, value, "must be an integer")
    if not low <= value <= high:
        raise SpecError(option, value, f"must be between {low} and {high}")
    return value


def _bool(value: object, option: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(option, value, "must be true or false")
    return value


def _labels(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise SpecError("labels", value, "must be a mapping of strings to strings")
    pairs = []
    for key, val in value.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise SpecError("labels", key, "keys must be letters, digits, '.', '_', '/', '-' (starting and ending with a letter or digit)")
        if not isinstance(val, str):
            raise SpecError(f"labels.{key}", val, "must be a string (quote numbers and booleans)")
        pairs.append((key, val))
    return tuple(sorted(pairs))


def check_signal(value: object, option: str) -> str:
    """A signal by name, with or without ``SIG`` (``TERM``, ``SIGTERM``, ``sigterm``) → ``SIGTERM``."""
    if not isinstance(value, str):
        raise SpecError(option, value, "must be a signal name such as SIGTERM")
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in SIGNALS:
        raise SpecError(option, value, f"unknown signal; use one of {', '.join(sorted(SIGNALS))}")
    return name


def _argv(value: object, option: str, allow_empty: bool) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(isinstance(arg, str) for arg in value):
        raise SpecError(option, value, "must be a list of strings (an argv; no shell is implied)")
    if not value and not allow_empty:
        raise SpecError(option, value, "must not be empty (leave it out to use the image's Cmd)")
    if any("\x00" in arg for arg in value):
        raise SpecError(option, value, "must not contain NUL characters")
    return tuple(value)


# What an error shows instead of an env value (a secret, possibly escaped past no_log's masking).
HIDDEN = "(value not shown)"


def _env(value: object, option: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(option, value, "must be a mapping of variable names to strings")
    pairs = []
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise SpecError(option, key, "variable names must match ^[A-Za-z_][A-Za-z0-9_]*$")
        if not isinstance(val, str):
            # Env values are often secrets: an error names the option and the key, never the value.
            raise SpecError(f"{option}.{key}", HIDDEN, f"must be a string, not {type(val).__name__} (quote it, or use the string filter)")
        if "\x00" in val:
            raise SpecError(f"{option}.{key}", HIDDEN, "must not contain NUL characters")
        pairs.append((key, val))
    return tuple(pairs)


def normalise_container(value: object, index: int, default_transport: str, volume_names: tuple[str, ...] = ()) -> ContainerSpec:
    if not isinstance(value, Mapping):
        raise SpecError(f"containers[{index}]", value, "must be a mapping with at least name and image")
    unknown = sorted(key for key in set(value) - set(CONTAINER_KEYS) if value[key] is not None)
    if unknown:
        raise SpecError(f"containers[{index}]", unknown, f"unknown keys; known: {', '.join(CONTAINER_KEYS)}")
    name = value.get("name")
    if not isinstance(name, str) or not CONTAINER_NAME.fullmatch(name):
        raise SpecError(f"containers[{index}].name", name, f"must be {layout.CONTAINER_NAME_RULE}")
    where = f"containers[{name}]"
    image = value.get("image")
    ref = parse_image_ref(image, default_transport, option=f"{where}.image")
    workdir = value.get("workdir")
    if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/") or "\x00" in workdir):
        raise SpecError(f"{where}.workdir", workdir, "must be an absolute path")
    user = value.get("user")
    if user is not None and (not isinstance(user, str) or not user or any(ch.isspace() for ch in user)):
        raise SpecError(f"{where}.user", user, "must be UID[:GID] or NAME[:GROUP]")
    policy = value.get("restart_policy")
    policy = DEFAULT_RESTART_POLICY if policy is None else policy
    if policy not in RESTART_POLICIES:
        raise SpecError(f"{where}.restart_policy", policy, f"must be one of {', '.join(RESTART_POLICIES)}")
    stop_signal = value.get("stop_signal")
    stop_timeout = value.get("stop_timeout")
    mounts = normalise_mounts(value.get("volumes"), where, volume_names)
    files = normalise_files(value.get("files"), where)
    if value.get("env_file") is not None:
        raise SpecError(f"{where}.env_file", value["env_file"], "is read on the controller by the hyper_pod action plugin, which sends its variables as env")
    options = normalise_options(value, where, str(policy))
    check_distinct_paths(
        [(f"{where}.volumes[{i}].path", m.path) for i, m in enumerate(mounts)]
        + [(f"{where}.files[{i}].path", f.path) for i, f in enumerate(files)]
        + [(f"{where}.tmpfs[{i}].path", t.path) for i, t in enumerate(options.tmpfs)]
    )
    return ContainerSpec(
        name=name,
        image=str(image),
        ref=ref,
        command=_argv(value.get("command"), f"{where}.command", allow_empty=True),
        entrypoint=_argv(value.get("entrypoint"), f"{where}.entrypoint", allow_empty=True),
        env=_env(value.get("env"), f"{where}.env"),
        workdir=workdir,
        user=user,
        restart_policy=str(policy),
        stop_signal=DEFAULT_STOP_SIGNAL if stop_signal is None else check_signal(stop_signal, f"{where}.stop_signal"),
        stop_timeout=DEFAULT_CONTAINER_STOP_TIMEOUT if stop_timeout is None else _int(stop_timeout, f"{where}.stop_timeout", 0, layout.MAX_STOP_TIMEOUT),
        volumes=mounts,
        files=files,
        options=options,
    )


def normalise_pod(params: Mapping[str, Any]) -> tuple[PodSpec, frozenset[str]]:
    """Check the module's parameters and fill defaults; return the spec and the stored-spec fields the user set.

    A parameter left at None counts as not set: the plan does not compare that field with the
    stored spec. ``accelerator: auto`` counts as not set either.
    """
    name = check_pod_name(params.get("name"))
    if _given(params, "kernel") != _given(params, "initrd"):
        given, missing = ("kernel", "initrd") if _given(params, "kernel") else ("initrd", "kernel")
        raise SpecError(given, params.get(given), f"needs {missing} as well (give both or neither)")
    if _given(params, "kernel") and _given(params, "guest_image"):
        raise SpecError("guest_image", params.get("guest_image"), "give either guest_image or kernel and initrd, not both")
    for option in ("kernel", "initrd"):
        path = params.get(option)
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise SpecError(option, path, "must be an absolute path")
    guest_image = None if _given(params, "kernel") else check_image_name(params.get("guest_image") or DEFAULT_GUEST_IMAGE, "guest_image")
    accelerator = params.get("accelerator") or "auto"
    if accelerator not in ACCELERATOR_CHOICES:
        raise SpecError("accelerator", accelerator, f"must be one of {', '.join(ACCELERATOR_CHOICES)}")
    kernel_args = params.get("kernel_args") or ""
    if not isinstance(kernel_args, str) or any(ord(ch) < 32 for ch in kernel_args):
        raise SpecError("kernel_args", kernel_args, "must be one line of text")
    default_transport = params.get("default_transport") or DEFAULT_TRANSPORT

    volumes = normalise_volumes(params.get("volumes"))
    volume_names = tuple(v.name for v in volumes)
    containers = tuple(normalise_container(c, i, default_transport, volume_names) for i, c in enumerate(params.get("containers") or []))
    check_root_shares(volumes, [(c.name, c.volumes) for c in containers])
    seen: set[str] = set()
    for index, container in enumerate(containers):
        if container.name in seen:
            raise SpecError(f"containers[{index}].name", container.name, "is used by an earlier container; names must be unique within the pod")
        seen.add(container.name)
    check_pod_sysctls([(c.name, c.options) for c in containers])

    spec = PodSpec(
        name=name,
        hostname=check_hostname(params["hostname"]) if _given(params, "hostname") else name,
        vcpus=_int(params["vcpus"], "vcpus", 1, MAX_VCPUS) if _given(params, "vcpus") else DEFAULT_VCPUS,
        memory=_int(params["memory"], "memory", MIN_MEMORY_MIB, MAX_MEMORY_MIB) if _given(params, "memory") else DEFAULT_MEMORY_MIB,
        accelerator=accelerator,
        guest_image=guest_image,
        kernel=params.get("kernel"),
        initrd=params.get("initrd"),
        kernel_args=kernel_args.strip(),
        labels=_labels(params["labels"]) if _given(params, "labels") else (),
        containers=containers,
        volumes=volumes,
        networks=tuple(normalise_networks(params.get("networks"))),
        ports=tuple(normalise_ports(params.get("ports"))),
        dns=normalise_dns(params),
        restart_policy=check_pod_restart_policy(params["restart_policy"]) if _given(params, "restart_policy") else DEFAULT_POD_RESTART_POLICY,
        autostart=_bool(params["autostart"], "autostart") if _given(params, "autostart") else DEFAULT_AUTOSTART,
        scratch_size=parse_scratch_size(params["scratch_size"]) if _given(params, "scratch_size") else DEFAULT_SCRATCH_BYTES,
        log_size=parse_log_size(params["log_size"]) if _given(params, "log_size") else DEFAULT_LOG_BYTES,
    )
    for container in containers:  # against the pod's own size when the task gives it (else when the config is made)
        check_pod_limits(container.name, container.options, spec.vcpus if _given(params, "vcpus") else None, spec.memory if _given(params, "memory") else None)
    user_set = {fld for fld, options in FIELD_OPTIONS.items() if any(_given(params, option) for option in options)}
    if accelerator == "auto":
        user_set.discard("accelerator")
    return spec, frozenset(user_set)


def read_file_sources(spec: PodSpec) -> PodSpec:
    """The spec with every ``src`` file read from the hyper host (check mode too: a missing file is an error then as well)."""
    containers = []
    for container in spec.containers:
        files = tuple(read_source(item, f"containers[{container.name}].files[{index}]") for index, item in enumerate(container.files))
        containers.append(replace(container, files=files) if files != container.files else container)
    return replace(spec, containers=tuple(containers))


def task_files(spec: PodSpec) -> dict[str, tuple[FileSpec, ...]]:
    return {container.name: container.files for container in spec.containers}
