# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The stored pod spec, typed: what the domain metadata holds, as frozen dataclasses.

JSON appears only at the edge: ``StoredPod.from_json`` where the metadata is read, ``to_json``
where it is written (and for the plan's before/after diff, which is JSON by nature). The JSON
form is the one pods have been stored in since format 1: keys that older pods lack get the
defaults they always had, and ``to_json(from_json(x)) == x`` for every spec this collection wrote.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import ContainerOptions

STORED_FORMAT = 1


class StoredSpecError(HyperError):
    """The metadata of a domain does not hold a pod spec this collection can read."""


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a stored spec."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- reading JSON, checked -------------------------------------------------------------------------


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None, required: bool = False) -> Any:
    if key not in data or data[key] is None:
        if required:
            raise StoredSpecError(f"stored pod spec: {_where(where, key)} is missing")
        return default
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise StoredSpecError(f"stored pod spec: {_where(where, key)} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return value


def _str(data: Mapping[str, Any], key: str, where: str, default: Optional[str] = None, required: bool = False) -> Any:
    return _get(data, key, str, where, default, required)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StoredSpecError(f"stored pod spec: {where} is {type(value).__name__}, not an object")
    return value


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    return list(_get(data, key, list, where, []))


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise StoredSpecError(f"stored pod spec: {where} is not a list of strings")
    return tuple(value)


def _pairs(data: Mapping[str, Any], key: str, where: str) -> tuple[tuple[str, str], ...]:
    value = _mapping(data.get(key) or {}, _where(where, key))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise StoredSpecError(f"stored pod spec: {_where(where, key)} is not a mapping of strings")
    return tuple(value.items())


# -- the parts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMount:
    name: str
    path: str
    read_only: bool = False

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredMount:
        item = _mapping(data, where)
        return cls(_str(item, "name", where, required=True), _str(item, "path", where, required=True), bool(_get(item, "read_only", bool, where, False)))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "read_only": self.read_only}


@dataclass(frozen=True)
class StoredFile:
    """A file injected into a container: its content is never stored, only a salted digest (``sha256``)."""

    path: str
    mode: str
    owner: str
    sha256: Optional[str]
    src: Optional[str] = None

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredFile:
        item = _mapping(data, where)
        return cls(
            path=_str(item, "path", where, required=True),
            mode=_str(item, "mode", where, required=True),
            owner=_str(item, "owner", where, required=True),
            sha256=_str(item, "sha256", where),
            src=_str(item, "src", where),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "mode": self.mode, "owner": self.owner}
        if self.src is not None:
            out["src"] = self.src
        out["sha256"] = self.sha256
        return out


@dataclass(frozen=True)
class StoredContainer:
    name: str
    image: str
    image_ref: str
    digest: Optional[str]
    command: Optional[tuple[str, ...]]
    entrypoint: Optional[tuple[str, ...]]
    env: tuple[tuple[str, str], ...]
    workdir: Optional[str]
    user: Optional[str]
    restart_policy: str
    stop_signal: str
    stop_timeout: int
    volumes: tuple[StoredMount, ...] = ()
    files: tuple[StoredFile, ...] = ()
    # cpus, memory, healthcheck ... (pod/container_options.py): stored flat, only the keys that are set.
    options: ContainerOptions = field(default_factory=ContainerOptions)
    # The pod's service container, added by hyper_service: hyper_pod keeps it (pod/service_container.py).
    service: bool = False

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredContainer:
        item = _mapping(data, where)
        name = _str(item, "name", where, required=True)
        where = f"containers[{name}]"
        command = item.get("command")
        entrypoint = item.get("entrypoint")
        try:
            options = ContainerOptions.from_json(item, where)
        except ValueError as err:
            raise StoredSpecError(f"stored pod spec: {err}") from None
        return cls(
            name=name,
            image=_str(item, "image", where, required=True),
            image_ref=_str(item, "image_ref", where, default=_str(item, "image", where)),
            digest=_str(item, "digest", where),
            command=None if command is None else _strings(command, f"{where}.command"),
            entrypoint=None if entrypoint is None else _strings(entrypoint, f"{where}.entrypoint"),
            env=_pairs(item, "env", where),
            workdir=_str(item, "workdir", where),
            user=_str(item, "user", where),
            restart_policy=_str(item, "restart_policy", where, default="never"),
            stop_signal=_str(item, "stop_signal", where, default="SIGTERM"),
            stop_timeout=int(_get(item, "stop_timeout", (int, float), where, 10)),
            volumes=tuple(StoredMount.from_json(m, f"{where}.volumes[{i}]") for i, m in enumerate(_list(item, "volumes", where))),
            files=tuple(StoredFile.from_json(f, f"{where}.files[{i}]") for i, f in enumerate(_list(item, "files", where))),
            options=options,
            service=bool(_get(item, "service", bool, where, False)),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "image_ref": self.image_ref,
            "digest": self.digest,
            "command": list(self.command) if self.command is not None else None,
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "env": dict(self.env),
            "workdir": self.workdir,
            "user": self.user,
            "restart_policy": self.restart_policy,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
        }
        # Only when used, so that the stored form of a container without them stays as it was.
        if self.volumes:
            out["volumes"] = [m.to_json() for m in self.volumes]
        if self.files:
            out["files"] = [f.to_json() for f in self.files]
        out.update(self.options.to_json())
        if self.service:
            out["service"] = True
        return out


@dataclass(frozen=True)
class StoredVolume:
    """A named disk volume (``kind="disk"``, size and format) or a host directory (``kind="host"``)."""

    name: str
    kind: str
    size: Optional[int] = None
    format: Optional[str] = None
    host_path: Optional[str] = None

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredVolume:
        item = _mapping(data, where)
        kind = _str(item, "kind", where, default="disk")
        if kind not in ("disk", "host"):
            raise StoredSpecError(f"stored pod spec: {where}.kind is {kind!r}, not disk or host")
        return cls(
            name=_str(item, "name", where, required=True),
            kind=kind,
            size=_get(item, "size", int, where),
            format=_str(item, "format", where),
            host_path=_str(item, "host_path", where),
        )

    def to_json(self) -> dict[str, Any]:
        if self.kind == "host":
            return {"name": self.name, "kind": "host", "host_path": self.host_path}
        return {"name": self.name, "kind": "disk", "size": self.size, "format": self.format}


@dataclass(frozen=True)
class StoredNetwork:
    name: str
    address: Optional[str] = None  # an interface (10.88.0.5/24) for a static address; None for DHCP

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredNetwork:
        item = _mapping(data, where)
        return cls(_str(item, "name", where, required=True), _str(item, "address", where))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True)
class StoredPort:
    host_ip: Optional[str]
    host_port: tuple[int, int]
    pod_port: tuple[int, int]
    protocol: str

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredPort:
        item = _mapping(data, where)

        def pair(key: str) -> tuple[int, int]:
            value = item.get(key)
            if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise StoredSpecError(f"stored pod spec: {where}.{key} is not a [low, high] pair of numbers")
            return int(value[0]), int(value[1])

        return cls(_str(item, "host_ip", where), pair("host_port"), pair("pod_port"), _str(item, "protocol", where, default="tcp"))

    def to_json(self) -> dict[str, Any]:
        return {"host_ip": self.host_ip, "host_port": list(self.host_port), "pod_port": list(self.pod_port), "protocol": self.protocol}


@dataclass(frozen=True)
class StoredDns:
    servers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: object, where: str = "dns") -> StoredDns:
        item = _mapping(data or {}, where)
        return cls(*(_strings(item.get(key) or [], f"{where}.{key}") for key in ("servers", "search", "options")))

    def to_json(self) -> dict[str, Any]:
        return {"servers": list(self.servers), "search": list(self.search), "options": list(self.options)}


@dataclass(frozen=True)
class StoredGuest:
    image: Optional[str]
    kernel: str
    initrd: str
    initrd_sha256: Optional[str] = None

    @classmethod
    def from_json(cls, data: object, where: str = "guest") -> StoredGuest:
        item = _mapping(data, where)
        return cls(
            _str(item, "image", where), _str(item, "kernel", where, default=""), _str(item, "initrd", where, default=""), _str(item, "initrd_sha256", where)
        )

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "kernel": self.kernel, "initrd": self.initrd, "initrd_sha256": self.initrd_sha256}


@dataclass(frozen=True)
class StoredPod:
    """The pod as its domain's metadata stores it (``spec``), with host-resolved fields filled in."""

    name: str
    hostname: str
    vcpus: int
    memory: int
    accelerator: str
    guest: StoredGuest
    kernel_args: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    containers: tuple[StoredContainer, ...] = ()
    networks: tuple[StoredNetwork, ...] = ()
    ports: tuple[StoredPort, ...] = ()
    dns: StoredDns = StoredDns()
    volumes: tuple[StoredVolume, ...] = ()
    # The pod restart policy and libvirt autostart (hostd/policy.py); None in pods made before they existed.
    restart_policy: Optional[str] = None
    autostart: Optional[bool] = None
    # The scratch disk's bytes (0: none) and each container's log bound; None in pods made before them
    # (no scratch disk: writable layers and logs in the guest's RAM).
    scratch_size: Optional[int] = None
    log_size: Optional[int] = None

    @classmethod
    def from_json(cls, data: object) -> StoredPod:
        item = _mapping(data, "spec")
        name = _str(item, "name", "", required=True)
        return cls(
            name=name,
            hostname=_str(item, "hostname", "", default=name),
            vcpus=int(_get(item, "vcpus", int, "", 1)),
            memory=int(_get(item, "memory", int, "", 128)),
            accelerator=_str(item, "accelerator", "", default=""),
            guest=StoredGuest.from_json(item.get("guest") or {}),
            kernel_args=_str(item, "kernel_args", "", default=""),
            labels=_pairs(item, "labels", ""),
            containers=tuple(StoredContainer.from_json(c, f"containers[{i}]") for i, c in enumerate(_list(item, "containers", ""))),
            networks=tuple(StoredNetwork.from_json(n, f"networks[{i}]") for i, n in enumerate(_list(item, "networks", ""))),
            ports=tuple(StoredPort.from_json(p, f"ports[{i}]") for i, p in enumerate(_list(item, "ports", ""))),
            dns=StoredDns.from_json(item.get("dns") or {}),
            volumes=tuple(StoredVolume.from_json(v, f"volumes[{i}]") for i, v in enumerate(_list(item, "volumes", ""))),
            restart_policy=_str(item, "restart_policy", ""),
            autostart=_get(item, "autostart", bool, ""),
            scratch_size=_get(item, "scratch_size", int, ""),
            log_size=_get(item, "log_size", int, ""),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "hostname": self.hostname,
            "vcpus": self.vcpus,
            "memory": self.memory,
            "accelerator": self.accelerator,
            "guest": self.guest.to_json(),
            "kernel_args": self.kernel_args,
            "labels": dict(self.labels),
            "containers": [c.to_json() for c in self.containers],
            "networks": [n.to_json() for n in self.networks],
            "ports": [p.to_json() for p in self.ports],
            "dns": self.dns.to_json(),
        }
        if self.volumes:
            out["volumes"] = [v.to_json() for v in self.volumes]
        if self.restart_policy is not None:
            out["restart_policy"] = self.restart_policy
        if self.autostart is not None:
            out["autostart"] = self.autostart
        if self.scratch_size is not None:
            out["scratch_size"] = self.scratch_size
        if self.log_size is not None:
            out["log_size"] = self.log_size
        return out

    def container(self, name: str) -> Optional[StoredContainer]:
        return next((c for c in self.containers if c.name == name), None)

    @property
    def disk_volumes(self) -> tuple[StoredVolume, ...]:
        return tuple(v for v in self.volumes if v.kind == "disk")

    @property
    def host_volumes(self) -> tuple[StoredVolume, ...]:
        return tuple(v for v in self.volumes if v.kind == "host")
