# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Secrets out of the libvirt metadata: env values sealed with a keyed digest, the clear values root-only on the host.

libvirt's read-only socket usually lets any local user read a domain's metadata, so the stored
spec keeps only ``hmac-sha256:<hex>`` of each env value (keyed with ``<root>/secret.key``, root
only, and bound to the pod, the container and the variable). That is enough to tell whether a
task changes a value. The clear values live in ``<root>/pods/<vm id>/env.json`` (0600) and in the
pod's config disk, nowhere else on the host.

Pods written before this (env values in clear in the metadata) are read as they are: their values
are sealed for the comparison, and kept clear in memory until the next change rewrites the metadata.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import hmac
import json
import os
import secrets
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import pod_dir

KEY_FILE = "secret.key"
ENV_FILE = "env.json"
SEALED_PREFIX = "hmac-sha256:"
KEY_BYTES = 32
# env.json holds a pod's env values: bounded like the stored spec it mirrors.
MAX_ENV_FILE = 4 << 20

Env = Mapping[str, Mapping[str, str]]  # container name → {variable: value}


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX) and len(value) == len(SEALED_PREFIX) + 64


def host_key(root: str, create: bool = True) -> bytes:
    """The host's sealing key (``<root>/secret.key``, root only), made on first use; never leaves the host."""
    path = os.path.join(root, KEY_FILE)
    for _attempt in range(2):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if not create:
                raise HyperError(f"the host's secret key {path} is missing") from None
            _make_key(path)
            continue
        except OSError as err:
            raise HyperError(f"cannot read the host's secret key {path}: {err.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            key = handle.read(KEY_BYTES + 1)
        if len(key) != KEY_BYTES:
            raise HyperError(f"the host's secret key {path} is not {KEY_BYTES} bytes; remove it only if no pod was made with it")
        return key
    raise HyperError(f"cannot make the host's secret key {path}")


def _make_key(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # never replaces a key another task made meanwhile
        except OSError as err:
            if err.errno != errno.EEXIST:
                raise HyperError(f"cannot make the host's secret key {path}: {err.strerror}") from None
    finally:
        os.unlink(temporary)


def sealing_key(root: str, check_mode: bool) -> bytes:
    """The host key; in check mode, when there is none yet, a throwaway one (no pod can have been sealed with it)."""
    if check_mode and not os.path.exists(os.path.join(root, KEY_FILE)):
        return secrets.token_bytes(KEY_BYTES)
    return host_key(root, create=not check_mode)


def seal(key: bytes, pod: str, container: str, variable: str, value: str) -> str:
    """The keyed digest stored instead of ``value``; a sealed value is returned as it is."""
    if is_sealed(value):
        return value
    message = "\0".join((pod, container, variable, value)).encode("utf-8", errors="surrogatepass")
    return SEALED_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def seal_spec(spec: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """A copy of a stored spec (JSON) with every container env value sealed."""
    out = copy.deepcopy(dict(spec))
    pod = str(out.get("name"))
    for container in out.get("containers") or []:
        if isinstance(container, dict) and isinstance(container.get("env"), Mapping):
            name = str(container.get("name"))
            container["env"] = {str(k): seal(key, pod, name, str(k), str(v)) for k, v in container["env"].items()}
    return out


def clear_env(spec: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The env values a spec holds in clear (a task's spec, or an old pod's metadata); sealed ones are left out."""
    out: dict[str, dict[str, str]] = {}
    for container in spec.get("containers") or []:
        if isinstance(container, Mapping) and isinstance(container.get("env"), Mapping):
            values = {str(k): str(v) for k, v in container["env"].items() if not is_sealed(v)}
            if values:
                out[str(container.get("name"))] = values
    return out


def unseal_spec(spec: Mapping[str, Any], key: bytes, *sources: Env) -> dict[str, Any]:
    """A copy of ``spec`` with every sealed env value replaced by a clear one from ``sources`` whose seal matches.

    A value no source holds is an error naming the container and the variable (never the value).
    """
    out = copy.deepcopy(dict(spec))
    pod = str(out.get("name"))
    for container in out.get("containers") or []:
        if not isinstance(container, dict) or not isinstance(container.get("env"), Mapping):
            continue
        name = str(container.get("name"))
        env: dict[str, str] = {}
        for variable, value in container["env"].items():
            variable, value = str(variable), str(value)
            if is_sealed(value):
                found = _find(key, pod, name, variable, value, sources)
                if found is None:
                    raise HyperError(
                        f"container {name}: the value of env {variable} is not kept on the host (only its digest is stored); "
                        "run the task with its containers and recreate: true"
                    )
                value = found
            env[variable] = value
        container["env"] = env
    return out


def _find(key: bytes, pod: str, container: str, variable: str, sealed: str, sources: tuple[Env, ...]) -> Optional[str]:
    for source in sources:
        candidate = (source.get(container) or {}).get(variable)
        if candidate is not None and hmac.compare_digest(seal(key, pod, container, variable, candidate), sealed):
            return candidate
    return None


# -- the clear values on the host -------------------------------------------------------------------


def env_path(root: str, vm_id: str) -> str:
    return os.path.join(pod_dir(root, vm_id), ENV_FILE)


def save_env(root: str, vm_id: str, env: Env) -> None:
    """``<root>/pods/<vm id>/env.json``, readable by root only (the directory too), replaced atomically."""
    directory = pod_dir(root, vm_id)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = env_path(root, vm_id)
    data = json.dumps({c: dict(v) for c, v in env.items()}, sort_keys=True).encode("utf-8")
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)


def load_env(root: str, vm_id: str) -> dict[str, dict[str, str]]:
    """The env values kept for a VM; empty when none are (a pod made before env.json existed)."""
    path = env_path(root, vm_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise HyperError(f"cannot read {path}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_ENV_FILE + 1)
    try:
        value = json.loads(data) if len(data) <= MAX_ENV_FILE else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()) for env in value.values()
    ):
        raise HyperError(f"{path} does not hold a pod's env values; recreate the pod with its containers")
    return value
