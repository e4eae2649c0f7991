# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A container's ``files``: files injected at every start, from inline content or a file on the hyper host.

The stored spec keeps each file's path, mode, owner and a salted SHA-256 of its content, never the
content. The content is kept on the host next to the pod (``<root>/pods/<vm id>/files``, mode 0600)
so that a later start of the same pod can inject it again, and removed with the pod.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredFile
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import check_absolute

FILE_KEYS = ("path", "content", "src", "mode", "owner")
DEFAULT_MODE = 0o644
DEFAULT_OWNER = "0:0"
MAX_FILE_BYTES = 16 << 20
PODS_DIR = "pods"
FILES_DIR = "files"
# In the guest: one directory per container, one file per entry (by index); bound into the container.
GUEST_FILES_DIR = layout.FILES_DIR


@dataclass(frozen=True)
class FileSpec:
    """One injected file. ``data`` is the content (inline, or read from ``src`` on the host); never shown."""

    path: str
    mode: int = DEFAULT_MODE
    owner: str = DEFAULT_OWNER
    src: Optional[str] = None
    data: Optional[bytes] = field(default=None, repr=False)


def parse_mode(value: object, option: str) -> int:
    """``"0640"``, ``"640"``, ``"u=rw"`` is refused; an int is taken as the mode itself (YAML ``0640`` is octal)."""
    if isinstance(value, bool):
        raise SpecError(option, value, "must be an octal mode such as '0640'")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and value.strip().isdigit() and set(value.strip()) <= set("01234567"):
        mode = int(value.strip(), 8)
    else:
        raise SpecError(option, value, "must be an octal mode such as '0640' (quote it)")
    if not 0 <= mode <= 0o7777:
        raise SpecError(option, value, "must be between 0000 and 7777 (octal)")
    return mode


def check_owner(value: object, option: str) -> str:
    """``UID[:GID]`` or ``NAME[:GROUP]``; names are resolved against the container image's /etc/passwd and /etc/group."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise SpecError(option, value, "must be UID[:GID] or NAME[:GROUP]")
    user, sep, group = value.partition(":")
    word = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    if not user or (sep and not group) or not set(user) <= word or not set(group) <= word or user.startswith("-") or group.startswith("-"):
        raise SpecError(option, value, "must be UID[:GID] or NAME[:GROUP] (letters, digits, '_', '.', '-')")
    return value


def normalise_files(value: object, where: str) -> tuple[FileSpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{where}.files", value, "must be a list of {path, content or src, mode, owner}")
    files = []
    for index, item in enumerate(value):
        option = f"{where}.files[{index}]"
        if not isinstance(item, Mapping):
            raise SpecError(option, "(not shown)", "must be a mapping with path and content or src")
        unknown = sorted(key for key, val in item.items() if key not in FILE_KEYS and val is not None)
        if unknown:
            raise SpecError(option, unknown, f"unknown keys; known: {', '.join(FILE_KEYS)}")
        path = check_absolute(item.get("path"), f"{option}.path")
        content, src = item.get("content"), item.get("src")
        if (content is None) == (src is None):
            raise SpecError(option, path, "give exactly one of content and src")
        data: Optional[bytes] = None
        if content is not None:
            if not isinstance(content, str):
                # The value may be a secret: never in the message.
                raise SpecError(f"{option}.content", "(not shown)", f"must be a string, not {type(content).__name__}")
            data = content.encode("utf-8")
            if len(data) > MAX_FILE_BYTES:
                raise SpecError(f"{option}.content", "(not shown)", f"is larger than {MAX_FILE_BYTES >> 20} MiB")
        else:
            src = check_absolute(src, f"{option}.src")
        mode = DEFAULT_MODE if item.get("mode") is None else parse_mode(item["mode"], f"{option}.mode")
        owner = DEFAULT_OWNER if item.get("owner") is None else check_owner(item["owner"], f"{option}.owner")
        files.append(FileSpec(path=path, mode=mode, owner=owner, src=src, data=data))
    return tuple(files)


def read_source(spec: FileSpec, option: str) -> FileSpec:
    """The file with ``data`` read from its ``src`` on the hyper host (unchanged when it has inline content)."""
    if spec.src is None:
        return spec
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular file is read (a FIFO or a
        # device never ends or blocks the task, in check mode too).
        fd = os.open(spec.src, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise SpecError(f"{option}.src", spec.src, f"cannot be read on the hyper host: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpecError(f"{option}.src", spec.src, "is not a regular file on the hyper host (a FIFO, device or directory is not read)")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise SpecError(f"{option}.src", spec.src, f"cannot be read on the hyper host: {err.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(f"{option}.src", spec.src, f"is larger than {MAX_FILE_BYTES >> 20} MiB")
    return replace(spec, data=data)


def file_digest(pod: str, container: str, path: str, data: bytes) -> str:
    """SHA-256 of the content salted with pod, container and path (a short secret is not found in a table of hashes)."""
    salt = "\0".join(("hyper.pods file", pod, container, path, "")).encode("utf-8")
    return "sha256:" + hashlib.sha256(salt + data).hexdigest()


def stored_file(pod: str, container: str, spec: FileSpec) -> dict[str, Any]:
    # sha256 is None in check mode when a src could not be read yet: the plan then shows a change.
    digest = file_digest(pod, container, spec.path, spec.data) if spec.data is not None else None
    return StoredFile(path=spec.path, mode=format(spec.mode, "04o"), owner=spec.owner, sha256=digest, src=spec.src).to_json()


def oci_file_mounts(container: StoredContainer) -> list[dict[str, Any]]:
    """Bind mounts of the container's injected files (the guest copies, see ``guest_file``)."""
    return [
        {"destination": item.path, "type": "bind", "source": guest_file(container.name, index), "options": ["bind", "rw"]}
        for index, item in enumerate(container.files)
    ]


def guest_file(container: str, index: int) -> str:
    return f"{GUEST_FILES_DIR}/{container}/{index}"


# -- the copies on the host -------------------------------------------------------------------------


def pod_dir(root: str, vm_id: str) -> str:
    return os.path.join(root, PODS_DIR, vm_id)


def host_file(root: str, vm_id: str, container: str, index: int) -> str:
    return os.path.join(pod_dir(root, vm_id), FILES_DIR, container, str(index))


def stage_files(root: str, vm_id: str, contents: Mapping[str, Sequence[bytes]]) -> None:
    """Keep the files' contents (container name → one per file, in order) for the VM ``vm_id``, readable by root only."""
    for name, items in contents.items():
        for index, data in enumerate(items):
            path = host_file(root, vm_id, name, index)
            # Every directory from <root>/pods/<vm id> down is root's alone (makedirs sets the mode of the last only).
            for directory in (pod_dir(root, vm_id), os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
                os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(path + ".tmp", path)


def load_staged(root: str, vm_id: str, pod: str, container: StoredContainer) -> list[bytes]:
    """The contents kept for a stored container's files, checked against their digests."""
    contents = []
    for index, item in enumerate(container.files):
        path = host_file(root, vm_id, container.name, index)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise HyperError(
                f"container {container.name}: the content of file {item.path} is not on the host ({path}: {err.strerror}); "
                "run the task with its containers and recreate: true"
            ) from None
        if file_digest(pod, container.name, item.path, data) != item.sha256:
            raise HyperError(f"container {container.name}: the content kept for file {item.path} ({path}) does not match its digest")
        contents.append(data)
    return contents


def remove_pod_dir(root: str, vm_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(pod_dir(root, vm_id))
