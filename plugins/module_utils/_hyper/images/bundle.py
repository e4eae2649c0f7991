# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""From a cached image to what a guest runs: OCI bundle (umoci), read-only rootfs disk (mke2fs), runtime config.

Bundles and disks are cached by image digest under ``<root>/cache/bundles/<hex>/`` and
``<root>/cache/disks/<hex>.img``, each made once, in a temporary name first and then renamed, so a
reader never sees half of one and two pods starting from one image share one disk.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import math
import os
import re
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, ResolvedImage, read_json, write_json_atomic

BUNDLES_DIR = "bundles"
DISKS_DIR = "disks"
ROOTFS_DIR = "rootfs"
# umoci writes config.json; we keep the image's own configuration next to it, since umoci folds
# Entrypoint and Cmd into one process.args and Docker's override rules need them apart.
IMAGE_CONFIG_FILE = "image-config.json"
UNPACK_TIMEOUT = 1800.0
MKFS_TIMEOUT = 1800.0

# ext4 without a journal (the disk is read-only), 4 KiB blocks, 256-byte inodes (room for xattrs
# and nanosecond times), no blocks reserved for root or for online resizing.
BLOCK = 4096
INODE_SIZE = 256
MIN_DISK_BYTES = 8 << 20
# Superblock and inode creation times of every disk (mke2fs honours E2FSPROGS_FAKE_TIME): 2000-01-01.
DISK_EPOCH = 946684800
# virtio-blk serials are at most 20 bytes; the guest finds an image disk by this one.
SERIAL_PREFIX = layout.IMAGE_SERIAL_PREFIX
_HEX = re.compile(r"^[0-9a-f]{64}$")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's default capability set; umoci's (three capabilities) breaks images whose root drops privileges.
DEFAULT_CAPABILITIES = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)
# Open files per container process. umoci's 1024 cannot hold haproxy with 1,000 service listeners
# (it needs ~1,230 file descriptors; bench/service_bench.py); no capability lets it raise the hard limit.
NOFILE_LIMIT = 65536
# Each container keeps these of its own; the network namespace is the VM's, shared by the pod.
OWN_NAMESPACES = ("pid", "mount", "ipc", "uts")
SHARED_NAMESPACES = ("network",)


@dataclass(frozen=True)
class Bundle:
    path: str
    base_config: dict[str, Any]
    image_config: dict[str, Any]

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, ROOTFS_DIR)

    @property
    def hex(self) -> str:
        return os.path.basename(self.path.rstrip("/"))


def bundle_path(cache: ImageCache, image: ResolvedImage) -> str:
    return os.path.join(cache.cache_dir, BUNDLES_DIR, image.hex)


def disk_path(bundle: str) -> str:
    """``<root>/cache/disks/<hex>.img`` for the bundle ``<root>/cache/bundles/<hex>``."""
    hexdigest = _bundle_hex(bundle)
    cache_dir = os.path.dirname(os.path.dirname(os.path.abspath(bundle.rstrip("/"))))
    return os.path.join(cache_dir, DISKS_DIR, hexdigest + ".img")


disk_serial = layout.image_serial


def unpack(cache: ImageCache, image: ResolvedImage, *, runner: Runner = run, timeout: float = UNPACK_TIMEOUT) -> str:
    """Unpack ``image`` into its bundle directory once and return the path (umoci does layers, whiteouts, owners)."""
    final = bundle_path(cache, image)
    if os.path.isfile(os.path.join(final, "config.json")):
        return final
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".tmp-{image.hex[:12]}-", dir=parent)
    try:
        target = os.path.join(work, "bundle")
        # Shared lock: a concurrent pull cannot move the tag between umoci reading it and us checking it.
        with cache.lock(exclusive=False):
            try:
                runner(["umoci", "unpack", "--image", image.umoci_image, target], timeout=timeout)
            except CommandFailed as err:
                raise ImageError(f"cannot unpack image {image.ref.original!r} ({image.digest}): {err.message}", err.details) from None
            if not os.path.exists(os.path.join(target, f"sha256_{image.hex}.mtree")):
                raise ImageError(f"image {image.ref.original!r}: the cache tag {image.tag} no longer points at {image.digest}; pull again")
            image_config = cache.image_config(image)
        write_json_atomic(os.path.join(target, IMAGE_CONFIG_FILE), image_config)
        try:
            os.rename(target, final)
        except OSError as err:
            # Another unpack of the same digest finished first: keep its bundle.
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not os.path.isfile(os.path.join(final, "config.json")):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def load_bundle(path: str) -> Bundle:
    base = read_json(os.path.join(path, "config.json"), "bundle config")
    image_config_path = os.path.join(path, IMAGE_CONFIG_FILE)
    image = read_json(image_config_path, "image config") if os.path.exists(image_config_path) else {}
    if not isinstance(base, dict) or not isinstance(image, dict):
        raise ImageError(f"bundle {path}: config.json and {IMAGE_CONFIG_FILE} must hold JSON objects")
    return Bundle(path, base, image)


@dataclass(frozen=True)
class TreeSize:
    blocks: int
    inodes: int


def measure_tree(rootfs: str) -> TreeSize:
    """4 KiB blocks and inodes the tree needs in ext4 (hard links counted once); sets atime to mtime.

    Walks with lstat only, never following a symlink out of the tree.
    """
    blocks = 0
    inodes = 1
    seen: set[tuple[int, int]] = set()
    stack = [rootfs]
    while stack:
        directory = stack.pop()
        entries = 0
        with os.scandir(directory) as it:
            for entry in it:
                entries += 1
                info = entry.stat(follow_symlinks=False)
                if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                inodes += 1
                os.utime(entry.path, ns=(info.st_mtime_ns, info.st_mtime_ns), follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
                elif stat.S_ISREG(info.st_mode):
                    blocks += math.ceil(info.st_size / BLOCK)
                elif stat.S_ISLNK(info.st_mode) and info.st_size >= 60:
                    blocks += 1  # longer than a fast symlink
        # A directory entry takes 8 bytes plus its name rounded to 4; 40 is generous for real names.
        blocks += max(1, math.ceil(entries * 40 / BLOCK))
    return TreeSize(blocks, inodes)


def disk_size(tree: TreeSize) -> tuple[int, int]:
    """(bytes, inode count) for a disk that holds ``tree``: data + inode tables + 10 % and 4 MiB of headroom."""
    inodes = tree.inodes + max(64, tree.inodes // 20)
    metadata = inodes * INODE_SIZE + (tree.blocks // 32768 + 1) * 2 * BLOCK  # inode tables, bitmaps per group
    size = int((tree.blocks * BLOCK + metadata) * 1.10) + (4 << 20)
    size = max(MIN_DISK_BYTES, math.ceil(size / (1 << 20)) << 20)
    return size, inodes


def build_disk(bundle: str, *, runner: Runner = run, timeout: float = MKFS_TIMEOUT) -> str:
    """Build ``<root>/cache/disks/<hex>.img`` holding the bundle's rootfs once, without mounting; return its path.

    mke2fs -d copies the tree with owners, modes, xattrs and times. UUID and directory hash seed
    come from the digest and the filesystem times are fixed, so a rebuild differs only in inode
    change times (ctime cannot be set from user space).
    """
    hexdigest = _bundle_hex(bundle)
    final = disk_path(bundle)
    if os.path.isfile(final):
        return final
    rootfs = os.path.join(bundle, ROOTFS_DIR)
    if not os.path.isdir(rootfs):
        raise ImageError(f"bundle {bundle} has no {ROOTFS_DIR}/ directory: unpack the image again")
    size, inodes = disk_size(measure_tree(rootfs))
    fs_uuid = str(uuid.UUID(bytes=bytes.fromhex(hexdigest[:32]), version=4))
    hash_seed = str(uuid.UUID(bytes=bytes.fromhex(hexdigest[32:]), version=4))
    directory = os.path.dirname(final)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{hexdigest[:12]}-", suffix=".img", dir=directory)
    os.close(fd)
    try:
        for attempt in (1, 2):
            argv = [
                "mke2fs", "-q", "-F", "-t", "ext4", "-b", str(BLOCK), "-I", str(INODE_SIZE), "-N", str(inodes), "-m", "0",
                "-O", "^has_journal,^resize_inode", "-U", fs_uuid, "-L", "hyper-" + hexdigest[:10],
                "-E", f"root_owner=0:0,hash_seed={hash_seed},nodiscard",
                "-d", rootfs, tmp, f"{size // 1024}k",
            ]  # fmt: skip
            os.truncate(tmp, 0)
            try:
                runner(argv, timeout=timeout, env={"E2FSPROGS_FAKE_TIME": str(DISK_EPOCH)})
                break
            except CommandFailed as err:
                # Our size estimate was short (odd trees: many tiny files, huge directories): once more, twice as big.
                if attempt == 2 or not re.search(r"space|allocat|full", err.stderr, re.IGNORECASE):
                    raise ImageError(f"cannot build the disk of bundle {bundle}: {err.message}", err.details) from None
                size *= 2
                inodes *= 2
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return final


def _bundle_hex(bundle: str) -> str:
    hexdigest = os.path.basename(os.path.abspath(bundle.rstrip("/")))
    if not _HEX.match(hexdigest):
        raise ImageError(f"{bundle} is not a bundle of the image cache (expected .../{BUNDLES_DIR}/<sha256 hex>)")
    return hexdigest


# ---------------------------------------------------------------------------------------------
# Users and groups of an image, read on the host from the rootfs (no shell, no chroot).


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class UserDb:
    users: tuple[PasswdEntry, ...] = ()
    # (name, gid, members)
    groups: tuple[tuple[str, int, tuple[str, ...]], ...] = ()
    present: bool = False

    def user_by_name(self, name: str) -> Optional[PasswdEntry]:
        return next((user for user in self.users if user.name == name), None)

    def user_by_uid(self, uid: int) -> Optional[PasswdEntry]:
        return next((user for user in self.users if user.uid == uid), None)

    def gid_of_group(self, name: str) -> Optional[int]:
        return next((gid for group, gid, _members in self.groups if group == name), None)

    def supplementary_gids(self, user: str, primary: int) -> list[int]:
        return sorted({gid for _group, gid, members in self.groups if user in members and gid != primary})


def parse_user_db(passwd: Optional[str], group: Optional[str]) -> UserDb:
    """Parse /etc/passwd and /etc/group text; malformed lines are skipped as libc does."""
    users: list[PasswdEntry] = []
    for line in (passwd or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[0] and not parts[0].startswith(("#", "+", "-")) and parts[2].isdigit() and parts[3].isdigit():
            users.append(PasswdEntry(parts[0], int(parts[2]), int(parts[3]), parts[5] or "/"))
    groups: list[tuple[str, int, tuple[str, ...]]] = []
    for line in (group or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0] and not parts[0].startswith(("#", "+", "-")) and parts[2].isdigit():
            groups.append((parts[0], int(parts[2]), tuple(member for member in parts[3].split(",") if member)))
    return UserDb(tuple(users), tuple(groups), present=passwd is not None)


def load_user_db(rootfs: str) -> UserDb:
    """The rootfs's users and groups; a symlinked /etc or /etc/passwd is not followed (it could point out of the tree)."""
    return parse_user_db(_read_in_root(rootfs, "passwd"), _read_in_root(rootfs, "group"))


def _read_in_root(rootfs: str, name: str) -> Optional[str]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        root_fd = os.open(rootfs, flags | os.O_DIRECTORY)
    except OSError as err:
        raise ImageError(f"cannot open the rootfs {rootfs}: {err.strerror}") from None
    etc_fd = file_fd = -1
    try:
        etc_fd = os.open("etc", flags | os.O_DIRECTORY, dir_fd=root_fd)
        file_fd = os.open(name, flags, dir_fd=etc_fd)
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            return None
        with os.fdopen(file_fd, "rb") as handle:
            file_fd = -1
            return handle.read(4 << 20).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        for fd in (file_fd, etc_fd, root_fd):
            if fd >= 0:
                os.close(fd)


# ---------------------------------------------------------------------------------------------
# The runtime config of one container: the image's config merged with the container's options.


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: Optional[str] = None


def resolve_user(value: object, users: UserDb, option: str) -> ResolvedUser:
    """``uid``, ``uid:gid``, ``name``, ``name:group`` (any mix) → numeric ids, like Docker does."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(option, value, "must be UID[:GID] or NAME[:GROUP]")
    text = str(value)
    user_part, _sep, group_part = text.partition(":")
    if not user_part or (_sep and not group_part) or any(ch.isspace() for ch in text):
        raise SpecError(option, value, "must be UID[:GID] or NAME[:GROUP]")
    entry: Optional[PasswdEntry]
    if user_part.isdigit():
        uid = int(user_part)
        entry = users.user_by_uid(uid)
    else:
        entry = users.user_by_name(user_part)
        if entry is None:
            where = "the image's /etc/passwd" if users.present else "the image (it has no /etc/passwd)"
            raise SpecError(option, value, f"no user {user_part!r} in {where}; give a numeric UID")
        uid = entry.uid
    if not group_part:
        gid = entry.gid if entry else 0
    elif group_part.isdigit():
        gid = int(group_part)
    else:
        found = users.gid_of_group(group_part)
        if found is None:
            raise SpecError(option, value, f"no group {group_part!r} in the image's /etc/group; give a numeric GID")
        gid = found
    if uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
        raise SpecError(option, value, "UID and GID must be below 4294967295")
    extra = users.supplementary_gids(entry.name, gid) if entry else []
    return ResolvedUser(uid, gid, extra, entry.home if entry else None)


def _argv(container: Mapping[str, Any], key: str, option: str) -> Optional[list[str]]:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(isinstance(arg, str) for arg in value):
        raise SpecError(option, value, "must be a list of strings (an argv; no shell is implied)")
    if any("\x00" in arg for arg in value):
        raise SpecError(option, value, "must not contain NUL characters")
    return list(value)


def _image_argv(image_config: Mapping[str, Any], key: str) -> list[str]:
    value = image_config.get(key)
    return [str(arg) for arg in value] if isinstance(value, list) else []


def _env_pairs(items: object) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            key, _sep, val = item.partition("=")
            if key:
                pairs.append((key, val))
    return pairs


def _container_env(value: object, option: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise SpecError(option, value, "must be a mapping of variable names to strings")
    pairs: list[tuple[str, str]] = []
    for key, val in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise SpecError(option, key, "variable names must be non-empty strings without '=' or NUL")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise SpecError(option, {key: val}, "values must be strings (quote true/false and other YAML scalars)")
        if "\x00" in str(val):
            raise SpecError(option, {key: val}, "values must not contain NUL characters")
        pairs.append((key, str(val)))
    return pairs


def runtime_config(
    base_config: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    hostname: str,
    image_config: Optional[Mapping[str, Any]] = None,
    users: Optional[UserDb] = None,
    root_path: str = ROOTFS_DIR,
) -> dict[str, Any]:
    """The OCI runtime config of one container of a pod. Pure: the inputs are not modified.

    ``base_config`` is umoci's config.json of the image (mounts, masked paths ...);
    ``image_config`` the image's own config (Entrypoint, Cmd, Env, WorkingDir, User) — without it
    umoci's process.args count as the image's Cmd. ``container`` may set ``command``,
    ``entrypoint``, ``env``, ``workdir`` and ``user``; ``name`` only labels errors.

    Docker's rules: the process is entrypoint + command. ``command`` replaces the image's Cmd;
    ``entrypoint`` replaces its Entrypoint and drops its Cmd (unless ``command`` is also given).
    """
    if not isinstance(hostname, str) or not hostname:
        raise SpecError("hostname", hostname, "must be a non-empty string")
    name = container.get("name")
    prefix = f"containers[{name}]." if name else ""
    users = users or UserDb()
    config: dict[str, Any] = copy.deepcopy(dict(base_config))
    process: dict[str, Any] = dict(config.get("process") or {})
    if image_config is None:
        image_config = {"Cmd": list(process.get("args") or []), "Env": list(process.get("env") or []), "WorkingDir": process.get("cwd")}

    entrypoint = _argv(container, "entrypoint", prefix + "entrypoint")
    command = _argv(container, "command", prefix + "command")
    args = (entrypoint if entrypoint is not None else _image_argv(image_config, "Entrypoint")) + (
        command if command is not None else ([] if entrypoint is not None else _image_argv(image_config, "Cmd"))
    )
    if not args:
        raise SpecError(prefix + "command", command, "nothing to run: the image has no Entrypoint or Cmd and none is set here")

    workdir = container.get("workdir")
    if workdir is None:
        workdir = image_config.get("WorkingDir") or "/"
        option = "image WorkingDir"
    else:
        option = prefix + "workdir"
    if not isinstance(workdir, str) or not workdir.startswith("/") or "\x00" in workdir:
        raise SpecError(option, workdir, "must be an absolute path")

    user_value = container.get("user")
    if user_value is not None:
        user = resolve_user(user_value, users, prefix + "user")
    elif image_config.get("User"):
        user = resolve_user(image_config["User"], users, "image User")
    else:
        user = resolve_user(0, users, "image User")

    env = dict(_env_pairs(image_config.get("Env")))
    env.update(_container_env(container.get("env"), prefix + "env"))
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    env.setdefault("HOME", user.home or "/")

    process.pop("terminal", None)
    process.pop("consoleSize", None)
    process["args"] = args
    process["env"] = [f"{key}={val}" for key, val in env.items()]
    process["cwd"] = workdir
    process["user"] = {"uid": user.uid, "gid": user.gid, **({"additionalGids": user.additional_gids} if user.additional_gids else {})}
    process["capabilities"] = {kind: list(DEFAULT_CAPABILITIES) for kind in ("bounding", "effective", "permitted")}
    process["noNewPrivileges"] = False
    kept = [limit for limit in process.get("rlimits") or [] if not isinstance(limit, dict) or limit.get("type") != "RLIMIT_NOFILE"]
    process["rlimits"] = [*kept, {"type": "RLIMIT_NOFILE", "hard": NOFILE_LIMIT, "soft": NOFILE_LIMIT}]
    config["process"] = process

    config["hostname"] = hostname
    config["root"] = {"path": root_path, "readonly": False}
    linux: dict[str, Any] = dict(config.get("linux") or {})
    namespaces = [ns for ns in linux.get("namespaces") or [] if isinstance(ns, dict) and ns.get("type") not in SHARED_NAMESPACES]
    present = {ns.get("type") for ns in namespaces}
    namespaces.extend({"type": kind} for kind in OWN_NAMESPACES if kind not in present)
    linux["namespaces"] = namespaces
    config["linux"] = linux
    return config
