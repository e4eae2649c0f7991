# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A hyperd pod file (the JSON ``hyperctl run -p`` / ``POST /pod/create`` took) as hyper_pod options: the from_hyperd filter.

The format is hyperd's ``UserPod`` (types/types.proto in hyperhq/hyperd). hyperd read it with
Go's JSON decoder, which matches field names case-insensitively (``portmappings`` and
``portMappings``, ``serviceip`` and ``serviceIP``), so keys are compared in lower case here too.
Pod files ``files[]`` become the containers' injected files (content in the file, or a
``file://`` URI read on the hyper host); hyperd's empty volumes become disk volumes named after
the pod, its ``vfs`` volumes host directories.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Mapping, Optional
from urllib.parse import unquote, urlsplit

from ansible_collections.hyper.pods.plugins.plugin_utils._convert import (
    MIN_MEMORY_MIB,
    VOLUME_NAME,
    ConversionError,
    Converter,
    argv,
    items,
    mapping,
    pod_name,
    port_number,
    string_map,
    text,
)

DEFAULT_EMPTY_VOLUME_SIZE = "1G"
# hyperd's default file permission (types/validate.go).
DEFAULT_PERM = "0755"
_PORTS = re.compile(r"^[0-9]+(-[0-9]+)?$")
_PERM = re.compile(r"^0[0-7]{3}$")
_RESTART = {"never": "never", "always": "always", "onfailure": "on-failure", "on-failure": "on-failure"}
_NAME_CHARS = re.compile(r"[^a-z0-9_.-]+")

POD_KNOWN = ("id", "hostname", "restartpolicy", "labels", "resource", "dns", "containers", "files", "volumes", "services", "portmappings")
POD_WARNED = {
    "type": "is not needed: every hyper_pod is a pod",
    "tty": "is not honoured: containers have no terminal; their output goes to the log",
    "log": "is not honoured: container logs go to the hyper host (hyper_pod_info shows their tails)",
}
POD_REFUSED = {
    "interfaces": "hyperd's bridges and taps are not libvirt networks: give hyper_pod's networks (a libvirt network name and an optional address)",
    "portmappingwhitelists": "hyper_pod has no source filter for port mappings; dropping it would open the ports to everyone",
}
CONTAINER_KNOWN = ("name", "image", "workdir", "restartpolicy", "envs", "command", "entrypoint", "ports", "volumes", "files", "user", "stopsignal")
CONTAINER_WARNED = {
    "tty": "is not honoured: containers have no terminal; their output goes to the log",
    "labels": "are not kept: hyper_pod has pod labels only",
    "logpath": "is not honoured: container logs go to the hyper host",
    "id": "is not kept: hyper_pod names containers by name",
}
CONTAINER_REFUSED = {
    "sysctl": "hyper_pod has no sysctl option",
    "ulimits": "hyper_pod has no ulimit option",
}


def _lower(value: object, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, val in mapping(value, where).items():
        low = str(key).lower()
        if low in result:
            raise ConversionError(f"{where}.{key}", "is given twice (hyperd's field names are not case-sensitive)")
        result[low] = val
    return result


def _file_content(conv: Converter, source: Mapping[str, Any], where: str) -> dict[str, str]:
    """``{"content": text}`` or ``{"src": host path}`` of one entry of the pod's files."""
    encoding = str(source.get("encoding") or "raw").lower()
    if encoding not in ("raw", "base64"):
        raise ConversionError(f"{where}.encoding", f"{source.get('encoding')!r} is not raw or base64")
    uri = source.get("uri")
    if uri:
        if source.get("content"):
            raise ConversionError(where, "has both uri and content")
        parts = urlsplit(str(uri))
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ConversionError(f"{where}.uri", f"{uri!r}: hyper_pod reads files on the hyper host only (file:///PATH); fetch it there first")
        if encoding != "raw":
            raise ConversionError(f"{where}.encoding", "base64 with a file:// URI: hyper_pod injects a host file as it is")
        return {"src": unquote(parts.path)}
    content = source.get("content") or ""
    if not isinstance(content, str):
        raise ConversionError(f"{where}.content", "must be a string")
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ConversionError(f"{where}.content", "is not valid base64") from None
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConversionError(
                f"{where}.content", "is binary: hyper_pod's file content is text; put the file on the hyper host and give a file:// URI"
            ) from None
    return {"content": content}


def _volumes(conv: Converter, pod: str, value: object, size: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    volumes: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, item in enumerate(items(value, "volumes")):
        where = f"volumes[{index}]"
        volume = _lower(item, where)
        conv.check_fields(
            volume,
            where,
            ("name", "source", "format", "driver", "fstype"),
            {"cache": "is not honoured: hyper_pod picks the disk cache mode"},
            {"option": "hyper_pod has no rbd or NAS volumes"},
        )
        name = text(volume.get("name"), f"{where}.name")
        source = str(volume.get("source") or "")
        kind = str(volume.get("format") or volume.get("driver") or "")
        if kind in ("rbd", "nas"):
            raise ConversionError(f"{where}.format", f"{kind}: hyper_pod has no network volumes; mount it on the hyper host and share the directory (vfs)")
        if not source:
            disk = f"{pod}-{_NAME_CHARS.sub('-', name.lower()).strip('-._')}"
            if not VOLUME_NAME.fullmatch(disk):
                raise ConversionError(f"{where}.name", f"the disk volume {disk!r} (pod id, '-', volume name) is not a valid volume name or is too long")
            if volume.get("fstype") not in (None, "", "ext4"):
                raise ConversionError(f"{where}.fstype", f"{volume.get('fstype')!r}: hyper_pod's disk volumes are ext4")
            conv.warn(where, f"volume {name} (empty) is the disk volume {disk} of {size}; it is kept when the pod is removed, unless volumes_purge=true")
            volumes.append({"name": disk, "size": size})
        elif kind in ("", "vfs"):
            if not source.startswith("/"):
                raise ConversionError(f"{where}.source", f"{source!r}: a shared host directory must be an absolute path")
            disk = _NAME_CHARS.sub("-", name.lower()).strip("-._")
            if not VOLUME_NAME.fullmatch(disk):
                raise ConversionError(f"{where}.name", f"{name!r} does not make a hyper_pod volume name")
            conv.warn(where, f"volume {name} shares {source} from the hyper host with virtio-fs: it must be a directory there (a single file cannot be shared)")
            volumes.append({"name": disk, "host_path": source})
        elif kind in ("raw", "qcow2", "vdi"):
            raise ConversionError(
                f"{where}.source", f"{source!r} ({kind}): hyper_pod keeps disk volumes under its own root and cannot attach an image file by path"
            )
        else:
            raise ConversionError(f"{where}.format", f"{kind!r} is not a hyperd volume format")
        names[name] = volumes[-1]["name"]
    return volumes, names


def _ports(conv: Converter, value: object, where: str, container: bool) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for index, item in enumerate(items(value, where)):
        here = f"{where}[{index}]"
        port = _lower(item, here)
        protocol = str(port.get("protocol") or "tcp").lower()
        if protocol not in ("tcp", "udp"):
            raise ConversionError(f"{here}.protocol", f"{port.get('protocol')!r}: hyper_pod maps TCP and UDP ports only")
        if container:
            conv.check_fields(port, here, ("hostport", "containerport", "protocol", "serviceport"), {}, {})
            if port.get("serviceport"):
                raise ConversionError(f"{here}.servicePort", "hyper_pod makes services from the pod's services only")
            if not port.get("hostport"):
                continue
            ports.append(
                {
                    "host_port": port_number(port.get("hostport"), f"{here}.hostPort"),
                    "pod_port": port_number(port.get("containerport"), f"{here}.containerPort"),
                    "protocol": protocol,
                }
            )
            continue
        conv.check_fields(port, here, ("hostport", "containerport", "protocol"), {}, {})
        mapped: dict[str, Any] = {"protocol": protocol}
        for key, option in (("hostport", "host_port"), ("containerport", "pod_port")):
            raw = str(port.get(key) or "")
            if not _PORTS.fullmatch(raw):
                raise ConversionError(f"{here}.{key}", f"{port.get(key)!r} is not a port or a range N-M")
            mapped[option] = int(raw) if raw.isdigit() else raw
        ports.append(mapped)
    return ports


def _services(conv: Converter, value: object) -> list[dict[str, Any]]:
    services = []
    for index, item in enumerate(items(value, "services")):
        where = f"services[{index}]"
        service = _lower(item, where)
        conv.check_fields(service, where, ("serviceip", "serviceport", "protocol", "hosts"), {}, {})
        protocol = str(service.get("protocol") or "tcp").lower()
        if protocol != "tcp":
            raise ConversionError(f"{where}.protocol", f"{service.get('protocol')!r}: hyper_pod's services are TCP only (haproxy)")
        backends = []
        for number, host in enumerate(items(service.get("hosts"), f"{where}.hosts")):
            here = f"{where}.hosts[{number}]"
            backend = _lower(host, here)
            conv.check_fields(backend, here, ("hostip", "hostport"), {}, {})
            backends.append({"address": text(backend.get("hostip"), f"{here}.hostIP"), "port": port_number(backend.get("hostport"), f"{here}.hostPort")})
        services.append(
            {
                "name": f"service-{index}",
                "address": text(service.get("serviceip"), f"{where}.serviceIP"),
                "port": port_number(service.get("serviceport"), f"{where}.servicePort"),
                "protocol": "tcp",
                "backends": backends,
            }
        )
    return services


def _user(value: object, where: str) -> Optional[str]:
    if value is None:
        return None
    user = _lower(value, where)
    unknown = sorted(set(user) - {"name", "group", "additionalgroups"})
    if unknown:
        raise ConversionError(f"{where}.{unknown[0]}", "is not a field of hyperd's user")
    if user.get("additionalgroups"):
        raise ConversionError(f"{where}.additionalGroups", "hyper_pod's user takes one group only")
    name = user.get("name")
    if not name:
        if user.get("group"):
            raise ConversionError(f"{where}.group", "needs name as well: hyper_pod's user is NAME[:GROUP]")
        return None
    return f"{name}:{user['group']}" if user.get("group") else str(name)


def _container_name(conv: Converter, container: Mapping[str, Any], index: int, taken: set[str]) -> str:
    name = container.get("name")
    if name:
        return text(name, f"containers[{index}].name")
    image = text(container.get("image"), f"containers[{index}].image")
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].lower()
    made = (_NAME_CHARS.sub("-", base).strip("-._") or "container")[:56]
    candidate, number = made, 1
    while candidate in taken:
        number += 1
        candidate = f"{made}-{number}"
    conv.warn(f"containers[{index}].name", f"not given: hyperd named the container after its image; hyper_pod calls it {candidate}")
    return candidate


def from_hyperd(pod_file: object, name: Optional[str] = None, strict: bool = False, volume_size: str = DEFAULT_EMPTY_VOLUME_SIZE) -> dict[str, Any]:
    """hyper_pod options (and ``warnings`` when there are any) from hyperd's pod JSON (a mapping)."""
    conv = Converter("from_hyperd", strict=strict)
    pod = _lower(pod_file, "pod")
    conv.check_fields(pod, "", POD_KNOWN, POD_WARNED, POD_REFUSED)
    pod_id = pod_name(name if name is not None else pod.get("id"), "name" if name is not None else "id")
    options: dict[str, Any] = {"name": pod_id}
    if pod.get("hostname"):
        options["hostname"] = text(pod.get("hostname"), "hostname")
    if pod.get("labels"):
        options["labels"] = string_map(pod.get("labels"), "labels")
    if pod.get("resource"):
        resource = _lower(pod.get("resource"), "resource")
        conv.check_fields(resource, "resource", ("vcpu", "memory"), {}, {})
        if resource.get("vcpu"):
            options["vcpus"] = resource["vcpu"]
        if resource.get("memory"):
            memory = resource["memory"]
            if isinstance(memory, int) and not isinstance(memory, bool) and memory < MIN_MEMORY_MIB:
                conv.warn("resource.memory", f"{memory} MiB is below hyper_pod's minimum; the pod gets {MIN_MEMORY_MIB} MiB")
                memory = MIN_MEMORY_MIB
            options["memory"] = memory
    if pod.get("dns"):
        options["dns"] = argv(pod.get("dns"), "dns")
    pod_restart = str(pod.get("restartpolicy") or "never")
    if pod_restart.lower() not in _RESTART:
        raise ConversionError("restartPolicy", f"{pod_restart!r} is not never, always or onFailure")

    files: dict[str, dict[str, str]] = {}
    for index, item in enumerate(items(pod.get("files"), "files")):
        where = f"files[{index}]"
        declared = _lower(item, where)
        conv.check_fields(declared, where, ("name", "encoding", "uri", "content"), {}, {})
        files[text(declared.get("name"), f"{where}.name")] = _file_content(conv, declared, where)
    volumes, volume_names = _volumes(conv, pod_id, pod.get("volumes"), volume_size)
    if volumes:
        options["volumes"] = volumes

    containers: list[dict[str, Any]] = []
    ports = _ports(conv, pod.get("portmappings"), "portmappings", container=False)
    taken: set[str] = set()
    for index, item in enumerate(items(pod.get("containers"), "containers")):
        source = _lower(item, f"containers[{index}]")
        conv.check_fields(source, f"containers[{index}]", CONTAINER_KNOWN, CONTAINER_WARNED, CONTAINER_REFUSED)
        cname = _container_name(conv, source, index, taken)
        taken.add(cname)
        where = f"containers[{cname}]"
        container: dict[str, Any] = {"name": cname, "image": text(source.get("image"), f"{where}.image")}
        for key, option in (("entrypoint", "entrypoint"), ("command", "command")):
            values = argv(source.get(key), f"{where}.{key}")
            if values is not None:
                container[option] = values
        env: dict[str, str] = {}
        for number, var in enumerate(items(source.get("envs"), f"{where}.envs")):
            pair = _lower(var, f"{where}.envs[{number}]")
            env[text(pair.get("env"), f"{where}.envs[{number}].env")] = str(pair.get("value") or "")
        if env:
            container["env"] = env
        if source.get("workdir"):
            container["workdir"] = text(source.get("workdir"), f"{where}.workdir")
        user = _user(source.get("user"), f"{where}.user")
        if user:
            container["user"] = user
        restart = str(source.get("restartpolicy") or pod_restart)
        if restart.lower() not in _RESTART:
            raise ConversionError(f"{where}.restartPolicy", f"{restart!r} is not never, always or onFailure")
        container["restart_policy"] = _RESTART[restart.lower()]
        if source.get("stopsignal"):
            container["stop_signal"] = text(source.get("stopsignal"), f"{where}.stopSignal")
        mounts = []
        for number, ref in enumerate(items(source.get("volumes"), f"{where}.volumes")):
            here = f"{where}.volumes[{number}]"
            mount = _lower(ref, here)
            conv.check_fields(
                mount, here, ("volume", "path", "readonly"), {}, {"detail": "a volume described inside a container: declare it in the pod's volumes"}
            )
            volume = text(mount.get("volume"), f"{here}.volume")
            if volume not in volume_names:
                raise ConversionError(f"{here}.volume", f"{volume!r} is not in the pod's volumes (it has: {', '.join(volume_names) or 'none'})")
            entry: dict[str, Any] = {"name": volume_names[volume], "path": text(mount.get("path"), f"{here}.path")}
            if mount.get("readonly"):
                entry["read_only"] = True
            mounts.append(entry)
        if mounts:
            container["volumes"] = mounts
        injected = []
        for number, ref in enumerate(items(source.get("files"), f"{where}.files")):
            here = f"{where}.files[{number}]"
            reference = _lower(ref, here)
            conv.check_fields(
                reference,
                here,
                ("path", "filename", "perm", "user", "group"),
                {},
                {"detail": "a file described inside a container: declare it in the pod's files"},
            )
            filename = text(reference.get("filename"), f"{here}.filename")
            if filename not in files:
                raise ConversionError(f"{here}.filename", f"{filename!r} is not in the pod's files (it has: {', '.join(files) or 'none'})")
            path = text(reference.get("path"), f"{here}.path")
            # hyperd: a path ending in "/" is a directory, and the file keeps its name there.
            if path.endswith("/"):
                path += filename
            perm = str(reference.get("perm") or DEFAULT_PERM)
            if not _PERM.fullmatch(perm):
                raise ConversionError(f"{here}.perm", f"{perm!r} is not an octal mode such as 0644")
            owner = str(reference.get("user") or "0")
            owner += f":{reference['group']}" if reference.get("group") else (":0" if owner == "0" else "")
            injected.append({"path": path, **files[filename], "mode": perm, "owner": owner})
        if injected:
            container["files"] = injected
        ports.extend(_ports(conv, source.get("ports"), f"{where}.ports", container=True))
        containers.append(container)
    if not containers:
        raise ConversionError("containers", "a pod needs at least one container")
    options["containers"] = containers
    if ports:
        options["ports"] = ports
    services = _services(conv, pod.get("services"))
    if services:
        options["services"] = services
    if conv.warnings:
        options["warnings"] = conv.warnings
    return options
