# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Registry credentials for skopeo: the ``registry_auth`` option checked, and handed to skopeo without argv or a disk.

A username and password never go on skopeo's command line (any user can read ``/proc/PID/cmdline``).
They are written, for the one copy, into an auth file of skopeo's own format (``{"auths": {REGISTRY:
{"auth": base64(user:password)}}}``, what ``skopeo login`` writes) in a root-only directory under
``/run`` (a tmpfs on most hosts: nothing reaches a disk), opened with ``O_EXCL | O_NOFOLLOW``, mode
0600, keyed by the registry of the image being copied only, and removed as soon as skopeo is done.
An ``auth_file`` the user gives is passed as it is. Neither the credentials nor the path are part of
the pod's stored spec or of any result.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Protocol

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import secure_dir

OPTION = "registry_auth"
# Where root's temporary auth files go (0700); other users get one per uid in the temp dir.
RUN_AUTH_DIR = "/run/hyper-pods/auth"
DEFAULT_REGISTRY = "docker.io"
# What an error or a log shows instead of a secret.
MASK = "********"
_KEYS = ("username", "password", "auth_file")


class ImageRef(Protocol):
    """What this file reads of images/oci.py's ImageRef (oci.py imports this file)."""

    @property
    def transport(self) -> str: ...

    @property
    def reference(self) -> str: ...


@dataclass(frozen=True)
class RegistryAuth:
    """Either a username and password, or the path of an auth file (``auth.json``)."""

    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    auth_file: Optional[str] = None

    def scrub(self, text: str) -> str:
        """``text`` with the password (and its base64 forms) replaced by a mask."""
        if not self.password:
            return text
        for secret in (self.password, _b64(f"{self.username}:{self.password}")):
            text = text.replace(secret, MASK)
        return text


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def normalise_registry_auth(value: object) -> Optional[RegistryAuth]:
    """The ``registry_auth`` option checked: None, ``{username, password}`` or ``{auth_file}``. No error shows the password."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(OPTION, "(not shown)", "must be a mapping with username and password, or with auth_file")
    given = {key: val for key, val in value.items() if val is not None}
    unknown = sorted(str(key) for key in given if key not in _KEYS)
    if unknown:
        raise SpecError(OPTION, unknown, f"unknown keys; known: {', '.join(_KEYS)}")
    if not given:
        return None
    auth_file = given.get("auth_file")
    if auth_file is not None:
        if "username" in given or "password" in given:
            raise SpecError(f"{OPTION}.auth_file", auth_file, "give either auth_file or username and password, not both")
        if not isinstance(auth_file, str) or not auth_file.startswith("/") or "\x00" in auth_file:
            raise SpecError(f"{OPTION}.auth_file", auth_file, "must be an absolute path of a file on the hyper host")
        if not os.path.isfile(auth_file):
            raise SpecError(f"{OPTION}.auth_file", auth_file, "no such file on the hyper host (an auth.json as skopeo login writes it)")
        return RegistryAuth(auth_file=auth_file)
    username, password = given.get("username"), given.get("password")
    if not isinstance(username, str) or not username or ":" in username or any(ord(ch) < 32 for ch in username):
        shown = username if isinstance(username, str) else "(not shown)"
        raise SpecError(f"{OPTION}.username", shown, "must be a non-empty string without ':' or control characters (and goes with password)")
    if not isinstance(password, str) or not password:
        raise SpecError(f"{OPTION}.password", MASK if password else password, "must be a non-empty string (and goes with username)")
    if any(ord(ch) < 32 for ch in password):
        raise SpecError(f"{OPTION}.password", MASK, "must not contain control characters")
    return RegistryAuth(username=username, password=password)


def registry_of(ref: ImageRef) -> str:
    """The registry host of a ``docker://`` reference, as containers' auth files key it (``docker.io`` by default)."""
    name = ref.reference[2:] if ref.reference.startswith("//") else ref.reference
    first, sep, _rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY


def auth_file_content(auth: RegistryAuth, registry: str) -> dict[str, Any]:
    """The auth file skopeo reads for a username and password: one registry only."""
    return {"auths": {registry: {"auth": _b64(f"{auth.username}:{auth.password}")}}}


def auth_dir() -> str:
    base = RUN_AUTH_DIR if os.geteuid() == 0 else os.path.join(tempfile.gettempdir(), f"hyper-pods-{os.geteuid()}", "auth")
    os.makedirs(os.path.dirname(base), mode=0o700, exist_ok=True)
    return secure_dir(base, "registry credentials")


@contextlib.contextmanager
def skopeo_auth_args(auth: Optional[RegistryAuth], ref: ImageRef, directory: Optional[str] = None) -> Iterator[list[str]]:
    """skopeo copy's source-credential arguments for ``ref`` for the ``with`` block (nothing for local transports)."""
    if auth is None or ref.transport != "docker":
        yield []
        return
    if auth.auth_file is not None:
        yield ["--src-authfile", auth.auth_file]
        return
    folder = directory or auth_dir()
    path = os.path.join(folder, f"auth-{secrets.token_hex(8)}.json")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise HyperError(f"{OPTION}: cannot write a temporary auth file in {folder}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(auth_file_content(auth, registry_of(ref)), handle)
        yield ["--src-authfile", path]
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
