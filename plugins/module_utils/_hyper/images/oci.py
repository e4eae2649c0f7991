# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Container images on the host: parse an ``image`` option, copy it into the local OCI layout cache with skopeo.

The cache is one OCI image layout at ``<root>/cache/oci``. Each image reference gets a tag of its own
there (a hash of the reference), and the manifest digest under that tag is the cache key for
everything built from the image later (bundles, disks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth import RegistryAuth, skopeo_auth_args
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import polls

TRANSPORTS = ("docker", "oci", "oci-archive", "docker-archive")
LOCAL_TRANSPORTS = ("oci", "oci-archive", "docker-archive")
# skopeo knows these too; we name them in the error rather than calling them unknown.
_UNSUPPORTED_TRANSPORTS = ("containers-storage", "dir", "docker-daemon", "ostree", "sif", "tarball")
DEFAULT_TRANSPORT = "docker://"
PULL_POLICIES = ("missing", "always", "never")
DEFAULT_PULL_POLICY = "missing"

CACHE_DIR = "cache"
LAYOUT_DIR = "oci"
REFS_DIR = "refs"
LOCK_FILE = "oci.lock"
# A registry pull of a large image over a slow link; local copies take well under a second.
PULL_TIMEOUT = 1800.0
# Another pod's pull of a large image may hold the cache lock this long.
LOCK_TIMEOUT = 1800.0

_ALLOWED = "docker://NAME[:TAG], oci:/PATH[:TAG], oci-archive:/FILE[:TAG], docker-archive:/FILE[:NAME:TAG], or a bare NAME[:TAG][@DIGEST]"

# distribution/reference grammar (the one Docker and skopeo use), IPv6 hosts left out.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_DOCKER_REF = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
# org.opencontainers.image.ref.name grammar from the OCI image-layout spec.
_OCI_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_OCI_REF = re.compile(rf"^{_OCI_COMPONENT}(?:/{_OCI_COMPONENT})*$")
_TRANSPORT_PREFIX = re.compile(r"^(?P<transport>[a-z][a-z0-9-]*):(?P<rest>.*)$", re.DOTALL)
_ARCHIVE_INDEX = re.compile(r"^@[0-9]+$")
SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

_REF_NAME = "org.opencontainers.image.ref.name"
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",)


@dataclass(frozen=True)
class ImageRef:
    """A validated image reference in skopeo's ``transport:reference`` form."""

    transport: str
    reference: str
    original: str
    # Local transports: the OCI layout directory or archive file, and what follows it (tag, name or @index).
    path: Optional[str] = None
    tag: Optional[str] = None

    @property
    def name(self) -> str:
        """What skopeo is given."""
        return f"{self.transport}:{self.reference}"

    @property
    def is_local(self) -> bool:
        return self.transport in LOCAL_TRANSPORTS

    @property
    def cache_tag(self) -> str:
        """The tag this reference gets in the cache layout: a hash, since references hold '/' and ':'."""
        return "ref-" + hashlib.sha256(self.name.encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class ResolvedImage:
    """An image present in the cache layout: ``digest`` (of its manifest) is the cache key."""

    ref: ImageRef
    digest: str
    layout: str
    tag: str
    changed: bool

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    @property
    def umoci_image(self) -> str:
        return f"{self.layout}:{self.tag}"


def parse_image_ref(value: object, default_transport: str = DEFAULT_TRANSPORT, option: str = "image") -> ImageRef:
    """Validate ``value`` and return it as an ImageRef; raise SpecError naming ``option`` otherwise.

    ``default_transport`` applies to a bare ``NAME[:TAG][@DIGEST]``: either ``docker://`` with an
    optional registry/namespace prefix ending in ``/`` (``docker://registry.example:5000/team/``), or
    ``oci:/PATH`` of an OCI layout in which the bare value is a tag.
    """
    if not isinstance(value, str):
        raise SpecError(option, value, f"must be a string: {_ALLOWED}")
    if not value.strip():
        raise SpecError(option, value, f"must not be empty: {_ALLOWED}")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise SpecError(option, value, "must not contain whitespace or control characters")
    match = _TRANSPORT_PREFIX.match(value)
    if match and match["transport"] in TRANSPORTS:
        return _parse_with_transport(match["transport"], match["rest"], value, option)
    if match and match["transport"] in _UNSUPPORTED_TRANSPORTS:
        raise SpecError(option, value, f"transport {match['transport']}: is not supported; use {_ALLOWED}")
    if _DOCKER_REF.match(value):
        return _apply_default(value, default_transport, option)
    if match:
        raise SpecError(option, value, f"unknown transport {match['transport']}:; use {_ALLOWED}")
    if _DOCKER_REF.match(value.lower()):
        raise SpecError(option, value, "image names must be lower case (only a tag may hold capitals)")
    raise SpecError(option, value, f"not an image reference; use {_ALLOWED}")


def _parse_with_transport(transport: str, rest: str, value: str, option: str) -> ImageRef:
    if transport == "docker":
        if not rest.startswith("//"):
            raise SpecError(option, value, "the docker transport is written docker://NAME[:TAG][@DIGEST]")
        if not _DOCKER_REF.match(rest[2:]):
            raise SpecError(option, value, "not a valid registry reference: expected docker://[REGISTRY/]NAME[:TAG][@DIGEST] in lower case")
        return ImageRef("docker", rest, value)
    what = "OCI layout directory" if transport == "oci" else "archive file"
    # skopeo splits the path from the reference at the first ':', so a path cannot hold one.
    path, sep, tag = rest.partition(":")
    if not path.startswith("/"):
        raise SpecError(option, value, f"the {what} must be an absolute path: {transport}:/PATH[:TAG]")
    if sep and not tag:
        raise SpecError(option, value, f"empty tag after the {what}; drop the ':' or name a tag")
    if tag:
        if transport == "docker-archive":
            if not (_ARCHIVE_INDEX.match(tag) or _DOCKER_REF.match(tag)):
                raise SpecError(option, value, "after the archive path, expected NAME[:TAG] or @INDEX")
        elif not _OCI_REF.match(tag):
            raise SpecError(option, value, f"{tag!r} is not a valid OCI reference name")
    return ImageRef(transport, rest, value, path=path, tag=tag or None)


def _apply_default(value: str, default_transport: str, option: str) -> ImageRef:
    if default_transport.startswith("docker://"):
        prefix = default_transport[len("docker://") :]
        if prefix and not (prefix.endswith("/") and _DOCKER_REF.match(prefix[:-1] + "/x")):
            raise SpecError("default_transport", default_transport, "expected docker:// or docker://REGISTRY[/NAMESPACE]/")
        return _parse_with_transport("docker", "//" + prefix + value, value, option)
    if default_transport.startswith("oci:"):
        path = default_transport[len("oci:") :]
        if not path.startswith("/") or ":" in path:
            raise SpecError("default_transport", default_transport, "expected oci:/PATH of an OCI layout directory (no ':' in the path)")
        ref = _parse_with_transport("oci", f"{path.rstrip('/') or '/'}:{value}", value, option)
        return ref
    raise SpecError("default_transport", default_transport, "must be docker://[REGISTRY/[NAMESPACE/]] or oci:/PATH")


def check_pull_policy(policy: object) -> str:
    if policy not in PULL_POLICIES:
        raise SpecError("pull", policy, f"must be one of {', '.join(PULL_POLICIES)}")
    return str(policy)


@contextlib.contextmanager
def file_lock(path: str, *, exclusive: bool = True, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an fcntl lock on ``path`` (created if need be) for the ``with`` block.

    The kernel drops the lock when the descriptor closes, also when the process dies, so a crashed
    pull never leaves the cache locked.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        for _attempt in polls(timeout, first=0.05, cap=1.0):
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                continue
        else:
            raise ImageError(f"waited {timeout:g} s for the lock {path}: another image pull or unpack is still running")
        yield
    finally:
        os.close(fd)


def read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ImageError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as err:
        raise ImageError(f"cannot read {what} {path}: {err}") from None


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def layout_tags(layout: str) -> dict[str, dict[str, Any]]:
    """Tag → descriptor of an OCI layout's index.json (untagged entries left out)."""
    index = read_json(os.path.join(layout, "index.json"), "OCI index")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise ImageError(f"{layout}/index.json has no manifests list: not an OCI image layout")
    tags: dict[str, dict[str, Any]] = {}
    for desc in manifests:
        if isinstance(desc, dict):
            name = (desc.get("annotations") or {}).get(_REF_NAME)
            if isinstance(name, str):
                tags[name] = desc
    return tags


def blob_path(layout: str, digest: str) -> str:
    if not SHA256_DIGEST.match(digest):
        raise ImageError(f"unsupported digest {digest!r} in {layout}: only sha256 is handled")
    return os.path.join(layout, "blobs", "sha256", digest.split(":", 1)[1])


class ImageCache:
    """The host's image cache under ``<root>/cache``: one OCI layout plus a record per reference.

    Nothing is created on disk until a pull has validated its input.
    """

    def __init__(self, root: str, *, runner: Runner = run, lock_timeout: float = LOCK_TIMEOUT, pull_timeout: float = PULL_TIMEOUT) -> None:
        self.root = root
        self.cache_dir = os.path.join(root, CACHE_DIR)
        self.layout = os.path.join(self.cache_dir, LAYOUT_DIR)
        self.refs_dir = os.path.join(self.cache_dir, REFS_DIR)
        self.lock_path = os.path.join(self.cache_dir, LOCK_FILE)
        self.runner = runner
        self.lock_timeout = lock_timeout
        self.pull_timeout = pull_timeout

    def lock(self, *, exclusive: bool = True) -> contextlib.AbstractContextManager[None]:
        """Exclusive for changes to the layout (pull), shared for readers (unpack)."""
        return file_lock(self.lock_path, exclusive=exclusive, timeout=self.lock_timeout)

    def pull(self, ref: ImageRef, policy: str = DEFAULT_PULL_POLICY, auth: Optional[RegistryAuth] = None) -> ResolvedImage:
        """Make ``ref`` present in the cache and return its digest.

        ``missing``: a ``docker://`` reference already in the cache is used as is (no network);
        a local source is copied again only when it changed (OCI layout: its manifest digest;
        archive: its size, mtime and inode). ``always``: copy again (skopeo skips blobs it has).
        ``never``: the cached copy as it is, the source not even looked at; not cached is an error.
        ``auth``: registry credentials for a ``docker://`` source (images/auth.py).
        """
        check_pull_policy(policy)
        if policy == "never":
            return self.cached(ref)
        source = self.source_fingerprint(ref)
        with self.lock():
            record = self._record(ref)
            previous = self._cached_digest(ref, record)
            if policy == "missing" and previous and (not ref.is_local or record.get("source") == source):
                return ResolvedImage(ref, previous, self.layout, ref.cache_tag, changed=False)
            self._copy(ref, auth)
            digest = self._tag_digest(ref.cache_tag)
            write_json_atomic(self._record_path(ref), {"image": ref.name, "source": source, "digest": digest})
            return ResolvedImage(ref, digest, self.layout, ref.cache_tag, changed=digest != previous)

    def lookup(self, ref: ImageRef) -> Optional[ResolvedImage]:
        """The cached image for ``ref`` if there is one (no copy, no network), for check mode."""
        if not os.path.isdir(self.layout):
            return None
        with self.lock(exclusive=False):
            digest = self._cached_digest(ref, self._record(ref))
        return ResolvedImage(ref, digest, self.layout, ref.cache_tag, changed=False) if digest else None

    def cached(self, ref: ImageRef) -> ResolvedImage:
        """The cached image of ``ref`` for ``pull: never``; a SpecError (option ``image``) when there is none."""
        found = self.lookup(ref)
        if found is None:
            raise SpecError(
                "image",
                ref.original,
                f"not in the image cache {self.layout} and pull is never: pull it first (hyper.pods.hyper_image, or pull: missing)",
            )
        return found

    def source_fingerprint(self, ref: ImageRef) -> Optional[str]:
        """What tells a changed local source from the one cached; also checks that it exists."""
        if not ref.is_local:
            return None
        if ref.path is None:  # is_local implies a path; checked for the type checker
            raise SpecError("image", ref.original, "a local transport needs a path")
        if ref.transport == "oci":
            if not os.path.isfile(os.path.join(ref.path, "index.json")):
                raise SpecError("image", ref.original, f"{ref.path} is not an OCI image layout (no index.json)")
            try:
                tags = layout_tags(ref.path)
            except ImageError as err:
                raise SpecError("image", ref.original, err.message) from None
            if ref.tag is None:
                return f"oci-layout:{os.stat(os.path.join(ref.path, 'index.json')).st_mtime_ns}"
            if ref.tag not in tags:
                known = ", ".join(sorted(tags)) or "none"
                raise SpecError("image", ref.original, f"no image tagged {ref.tag!r} in the OCI layout {ref.path} (tags: {known})")
            return f"oci:{tags[ref.tag].get('digest')}"
        try:
            info = os.stat(ref.path)
        except OSError as err:
            raise SpecError("image", ref.original, f"cannot use the archive {ref.path}: {err.strerror}") from None
        if not os.path.isfile(ref.path):
            raise SpecError("image", ref.original, f"{ref.path} is not a file")
        return f"file:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"

    def image_config(self, image: ResolvedImage) -> dict[str, Any]:
        """The image's configuration (``Entrypoint``, ``Cmd``, ``Env``, ``WorkingDir``, ``User`` ...)."""
        manifest = read_json(blob_path(self.layout, image.digest), "image manifest")
        if not isinstance(manifest, dict) or manifest.get("mediaType", _MANIFEST_TYPES[0]) not in _MANIFEST_TYPES:
            raise ImageError(f"image {image.ref.original}: cached manifest {image.digest} is not an OCI image manifest")
        config_digest = (manifest.get("config") or {}).get("digest")
        blob = read_json(blob_path(self.layout, str(config_digest)), "image config")
        config = blob.get("config") if isinstance(blob, dict) else None
        return dict(config) if isinstance(config, dict) else {}

    def _copy(self, ref: ImageRef, auth: Optional[RegistryAuth] = None) -> None:
        # skopeo creates the layout (oci-layout, index.json, blobs/) when it is missing.
        with skopeo_auth_args(auth, ref) as creds:
            argv = ["skopeo", "copy", "--quiet", "--remove-signatures", *creds, ref.name, f"oci:{self.layout}:{ref.cache_tag}"]
            try:
                self.runner(argv, timeout=self.pull_timeout)
            except CommandFailed as err:
                where = "" if ref.is_local else " (check the registry name, network access and credentials)"
                message = f"cannot copy image {ref.original!r} into {self.layout}{where}: {err.message}"
                details = dict(err.details)
                if auth is not None:  # skopeo never echoes a password; make sure of it all the same
                    message = auth.scrub(message)
                    details = {key: auth.scrub(val) if isinstance(val, str) else val for key, val in details.items()}
                raise ImageError(message, details) from None

    def _record_path(self, ref: ImageRef) -> str:
        return os.path.join(self.refs_dir, ref.cache_tag + ".json")

    def _record(self, ref: ImageRef) -> dict[str, Any]:
        try:
            data = read_json(self._record_path(ref), "cache record")
        except ImageError:
            return {}
        return data if isinstance(data, dict) else {}

    def _cached_digest(self, ref: ImageRef, record: dict[str, Any]) -> Optional[str]:
        """The digest under the reference's tag, if its manifest blob is present and matches the record."""
        if not record or record.get("image") != ref.name or not os.path.isfile(os.path.join(self.layout, "index.json")):
            return None
        desc = layout_tags(self.layout).get(ref.cache_tag)
        digest = desc.get("digest") if desc else None
        if not isinstance(digest, str) or digest != record.get("digest") or not os.path.isfile(blob_path(self.layout, digest)):
            return None
        return digest

    def _tag_digest(self, tag: str) -> str:
        desc = layout_tags(self.layout).get(tag)
        digest = desc.get("digest") if desc else None
        if not isinstance(digest, str) or not SHA256_DIGEST.match(digest):
            raise ImageError(f"skopeo left no usable manifest under the tag {tag} in {self.layout} (found {digest!r})")
        if desc and desc.get("mediaType", _MANIFEST_TYPES[0]) not in _MANIFEST_TYPES:
            raise ImageError(f"{self.layout}:{tag} is a {desc.get('mediaType')}, expected a single OCI image manifest")
        return digest
