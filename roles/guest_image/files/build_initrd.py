# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a hyper.pods guest image: kernel, initrd and manifest.

Shipped in the ``hyper.pods.guest_image`` role and run by it on the managed host with
the host's own python3 (``python3 - <subcommand> ...``, the script arriving on stdin),
so it uses the standard library only and supports Python 3.9+.

Subcommands print one JSON object on stdout:

``resolve-package``  follow a kernel metapackage to the real kernel package (read only).
``extract-kernel``   unpack a downloaded kernel package into a cache dir and run depmod.
``build``            assemble the initrd and write vmlinuz (vmlinux for a kernel build_kernel.py
                     built), initrd.img and manifest.json into the image dir, replacing a file
                     only when its bytes differ.

Everything that decides the initrd's bytes is pure and deterministic (sorted entries,
uid/gid 0, fixed mtimes, no timestamps in compressed headers), so the same inputs give
the same bytes and a rebuild reports no change.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

MANIFEST_FORMAT = 1
COMPRESSIONS = ("gzip", "lz4", "zstd", "none")
# Kernel config option that must be =y for the kernel to unpack an initrd so compressed.
COMPRESSION_CONFIG = {"gzip": "CONFIG_RD_GZIP", "lz4": "CONFIG_RD_LZ4", "zstd": "CONFIG_RD_ZSTD", "none": None}
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
# Top-level directories that may be symlinks on the host (merged /usr); the initrd mirrors them.
MERGED_DIRS = ("bin", "sbin", "lib", "lib64")


class BuildError(Exception):
    """An error the user can act on; printed as the task's failure message."""


# --------------------------------------------------------------------------- pure helpers


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_deb822(text: str) -> Dict[str, str]:
    """Parse the first stanza of ``apt-cache show`` output into a dict (continuation lines joined)."""
    fields: Dict[str, str] = {}
    key: Optional[str] = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key is not None:
            fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip()
        fields[key] = value.strip()
    return fields


def parse_depends(value: str) -> List[List[str]]:
    """``a (>= 1) | b, c`` -> ``[["a", "b"], ["c"]]`` (package names only)."""
    groups: List[List[str]] = []
    for group in value.split(","):
        names = [re.split(r"[\s(\[:]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        names = [n for n in names if n]
        if names:
            groups.append(names)
    return groups


def kernel_dependency(fields: Dict[str, str], prefix: str = "linux-image-") -> Optional[str]:
    """The kernel package a metapackage points to, or None when this is the real package."""
    for group in parse_depends(fields.get("Depends", "") + "," + fields.get("Pre-Depends", "")):
        for name in group:
            if name.startswith(prefix):
                return name
    return None


def module_name(path: str) -> str:
    """``kernel/drivers/char/hw_random/virtio-rng.ko.xz`` -> ``virtio_rng`` (modprobe's normalised name)."""
    base = os.path.basename(path)
    for suffix in sorted(MODULE_SUFFIXES, key=len, reverse=True):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> Dict[str, List[str]]:
    """Parse ``modules.dep``: module path -> dependency paths (as listed: transitive, nearest first)."""
    deps: Dict[str, List[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, sep, rest = line.partition(":")
        if not sep:
            raise BuildError(f"modules.dep: malformed line {line!r}")
        deps[path.strip()] = rest.split()
    return deps


def parse_modules_softdep(text: str) -> Dict[str, List[str]]:
    """Parse ``modules.softdep``: module name -> names of its ``pre:`` soft dependencies."""
    pre: Dict[str, List[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "softdep":
            continue
        names: List[str] = []
        mode = ""
        for word in words[2:]:
            if word in ("pre:", "post:"):
                mode = word
            elif mode == "pre:":
                names.append(word.replace("-", "_"))
        if names:
            pre.setdefault(words[1].replace("-", "_"), []).extend(names)
    return pre


def parse_modules_builtin(text: str) -> Set[str]:
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


@dataclass
class ModulePlan:
    order: List[str]  # module paths (relative to lib/modules/<release>), dependencies first
    builtin: List[str]  # requested names that are built into the kernel
    absent: List[str]  # optional names the kernel has neither as module nor built in


def resolve_modules(
    deps: Dict[str, List[str]],
    wanted: Sequence[str],
    optional: Sequence[str] = (),
    builtin: Iterable[str] = (),
    softdeps: Optional[Dict[str, List[str]]] = None,
) -> ModulePlan:
    """Order the wanted modules and their dependencies so that each comes after what it needs.

    A depth-first walk over ``modules.dep`` (post-order), in the order the names were asked
    for, so the result is a topological order and stable for the same inputs. ``pre:`` soft
    dependencies that name a real module are loaded first; those naming an alias or a
    built-in are ignored (the kernel has them already or modprobe would resolve them).
    """
    by_name: Dict[str, str] = {}
    for path in deps:
        by_name.setdefault(module_name(path), path)
    builtin_names = {b.replace("-", "_") for b in builtin}
    soft = softdeps or {}
    order: List[str] = []
    done: Set[str] = set()
    active: List[str] = []

    def visit(path: str) -> None:
        if path in done:
            return
        if path in active:
            cycle = " -> ".join(module_name(p) for p in [*active[active.index(path) :], path])
            raise BuildError(f"modules.dep has a dependency cycle: {cycle}")
        active.append(path)
        for pre in soft.get(module_name(path), []):
            if pre in by_name and pre not in builtin_names:
                visit(by_name[pre])
        # modules.dep lists the nearest dependency first; modprobe loads the list in reverse.
        for dep in reversed(deps.get(path, [])):
            if dep not in deps:
                raise BuildError(f"modules.dep: {path} needs {dep}, which has no entry of its own")
            visit(dep)
        active.pop()
        done.add(path)
        order.append(path)

    plan = ModulePlan(order=order, builtin=[], absent=[])
    seen: Set[str] = set()
    for raw, required in [*((n, True) for n in wanted), *((n, False) for n in optional)]:
        name = raw.replace("-", "_")
        if name in seen:
            continue
        seen.add(name)
        if name in by_name:
            visit(by_name[name])
        elif name in builtin_names:
            plan.builtin.append(name)
        elif required:
            raise BuildError(f"guest_image_modules: module {raw!r} is neither in modules.dep nor built into the kernel")
        else:
            plan.absent.append(name)
    return plan


def parse_ldd(text: str) -> List[str]:
    """Library paths from ``ldd`` output, the dynamic loader included, in output order."""
    paths: List[str] = []
    for line in text.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip()
            if target.startswith("not found"):
                raise BuildError(f"ldd: missing library: {line}")
            candidate = target.split(" (", 1)[0].strip()
        else:
            candidate = line.split(" (", 1)[0].strip()
        if candidate.startswith("/") and candidate not in paths:
            paths.append(candidate)
    return paths


def kernel_config_enabled(config_text: str, option: str) -> bool:
    return re.search(rf"^{re.escape(option)}=y$", config_text, re.MULTILINE) is not None


def bzimage_release(data: bytes) -> Optional[str]:
    """``uname -r`` of an x86 bzImage, read from its setup header (kernel_version field), or None."""
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    offset = int.from_bytes(data[0x20E:0x210], "little")
    if not offset:
        return None
    start = offset + 0x200
    end = data.find(b"\0", start, start + 512)
    if end < 0:
        return None
    words = data[start:end].decode("ascii", "replace").split()
    return words[0] if words else None


def detect_compression(data: bytes) -> str:
    """Compression of an initrd by its magic number."""
    magics = [
        (b"\x1f\x8b", "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x02\x21\x4c\x18", "lz4"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"BZh", "bzip2"),
        (b"\x89LZO", "lzo"),
        (b"070701", "none"),
        (b"070702", "none"),
    ]
    for magic, name in magics:
        if data.startswith(magic):
            return name
    return "unknown"


# --------------------------------------------------------------------------- cpio


@dataclass
class Entry:
    """One initrd entry. ``path`` is relative (no leading slash)."""

    path: str
    mode: int  # full st_mode: type and permission bits
    data: bytes = b""  # file content, or symlink target
    rdev: Tuple[int, int] = (0, 0)


def _cpio_header(ino: int, entry: Entry, nlink: int, mtime: int, name: bytes) -> bytes:
    fields = [ino, entry.mode, 0, 0, nlink, mtime, len(entry.data), 0, 0, entry.rdev[0], entry.rdev[1], len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def cpio_newc(entries: Iterable[Entry], mtime: int = 0) -> bytes:
    """A reproducible newc archive: sorted by path, uid/gid 0, one mtime, inodes numbered in order.

    Sorting by path puts every directory before its contents (a prefix sorts first).
    """
    out = bytearray()
    for ino, entry in enumerate(sorted(entries, key=lambda e: e.path), start=1):
        name = entry.path.encode()
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        header = _cpio_header(ino, entry, nlink, mtime, name)
        out += header + name + b"\0" + _pad4(len(header) + len(name) + 1)
        out += entry.data + _pad4(len(entry.data))
    trailer = Entry(path="TRAILER!!!", mode=0)
    header = _cpio_header(0, trailer, 1, 0, b"TRAILER!!!")
    out += header + b"TRAILER!!!\0" + _pad4(len(header) + 11)
    return bytes(out)


def compress(data: bytes, method: str) -> bytes:
    """Compress deterministically, in a format the kernel's initramfs unpacker reads."""
    if method == "none":
        return data
    if method == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)  # like gzip -n: no name, no time
    if method == "lz4":
        argv = ["lz4", "-l", "-9", "-q", "-c"]  # -l: legacy frame, the only one the kernel reads
    elif method == "zstd":
        argv = ["zstd", "-q", "-19", "-T1", "-c"]
    else:
        raise BuildError(f"guest_image_compression: unknown compression {method!r}")
    try:
        return subprocess.run(argv, input=data, capture_output=True, check=True).stdout
    except FileNotFoundError as exc:
        raise BuildError(f"guest_image_compression: {method!r} needs the {argv[0]!r} command on the host") from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{argv[0]} failed: {exc.stderr.decode(errors='replace').strip()}") from exc


class Tree:
    """The initrd's file tree, built in memory. Paths are canonical: no component is a symlink."""

    def __init__(self) -> None:
        self.entries: Dict[str, Entry] = {}

    def canonical(self, path: str) -> str:
        """Resolve symlinks of the tree in the parent components of ``path``."""
        parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
        resolved: List[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            entry = self.entries.get(candidate)
            if parts and entry is not None and stat.S_ISLNK(entry.mode):
                hops += 1
                if hops > 40:
                    raise BuildError(f"too many symlinks resolving {path}")
                target = entry.data.decode()
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            resolved.append(part)
        return "/".join(resolved)

    def _parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent:
            existing = self.entries.get(parent)
            if existing is None:
                self.entries[parent] = Entry(parent, stat.S_IFDIR | 0o755)
            elif not stat.S_ISDIR(existing.mode):
                raise BuildError(f"initrd: {parent} is not a directory")
            parent = os.path.dirname(parent)

    def _put(self, entry: Entry, replace: bool) -> bool:
        existing = self.entries.get(entry.path)
        if existing is not None:
            if existing == entry:
                return True
            if not replace:
                return False
            if stat.S_ISDIR(existing.mode):
                raise BuildError(f"initrd: {entry.path} is a directory")
        self._parents(entry.path)
        self.entries[entry.path] = entry
        return True

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        path = self.canonical(path)
        existing = self.entries.get(path)
        if existing is not None and not stat.S_ISDIR(existing.mode):
            raise BuildError(f"initrd: {path} exists and is not a directory")
        self._parents(path)
        self.entries[path] = Entry(path, stat.S_IFDIR | (mode & 0o7777))

    def add_file(self, path: str, data: bytes, mode: int = 0o644, replace: bool = True) -> bool:
        return self._put(Entry(self.canonical(path), stat.S_IFREG | (mode & 0o7777), data), replace)

    def add_symlink(self, path: str, target: str, replace: bool = True) -> bool:
        return self._put(Entry(self.canonical(path), stat.S_IFLNK | 0o777, target.encode()), replace)

    def add_device(self, path: str, mode: int, major: int, minor: int) -> None:
        self._put(Entry(self.canonical(path), mode, b"", (major, minor)), True)

    def add_host_path(self, path: str, host_root: str = "/") -> str:
        """Copy a host file at the same path, following its chain of symlinks.

        Each link on the way is kept as a link and the file it ends at is copied, so the
        path works in the guest exactly as on the host. Returns the canonical path of the file.
        """
        for _hop in range(40):
            parent = os.path.realpath(os.path.join(host_root, os.path.dirname(path).lstrip("/")))
            host = os.path.join(parent, os.path.basename(path))
            inner = "/" + os.path.relpath(host, os.path.realpath(host_root))
            if os.path.islink(host):
                target = os.readlink(host)
                self.add_symlink(inner, target)
                path = target if target.startswith("/") else os.path.join(os.path.dirname(inner), target)
                continue
            try:
                with open(host, "rb") as handle:
                    data = handle.read()
                mode = os.stat(host).st_mode
            except OSError as exc:
                raise BuildError(f"cannot read {host}: {exc.strerror}") from exc
            self.add_file(inner, data, stat.S_IMODE(mode))
            return self.canonical(inner)
        raise BuildError(f"too many symlinks following {path}")

    def regular_files(self) -> Dict[str, str]:
        return {"/" + e.path: sha256_hex(e.data) for e in self.entries.values() if stat.S_ISREG(e.mode)}


# --------------------------------------------------------------------------- host side


def run(argv: Sequence[str], **kwargs: object) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise BuildError(f"command not found: {argv[0]}") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
        raise BuildError(f"{' '.join(argv)} failed (rc={proc.returncode}): {message}")
    return str(proc.stdout.decode(errors="replace"))


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc


def cmd_resolve_package(args: argparse.Namespace) -> Dict[str, object]:
    """Follow metapackage dependencies (``linux-image-cloud-amd64``) to the real kernel package."""
    package = args.package
    chain = [package]
    for _depth in range(5):
        fields = parse_deb822(run(["apt-cache", "show", "--no-all-versions", package]))
        if not fields.get("Package"):
            raise BuildError(f"guest_image_kernel_package: apt knows no package {package!r}")
        target = kernel_dependency(fields)
        if target is None:
            version = fields.get("Version", "")
            arch = fields.get("Architecture", "")
            return {
                "changed": False,
                "package": package,
                "version": version,
                "architecture": arch,
                "sha256": fields.get("SHA256", ""),
                # the name apt-get download gives the file (an epoch's ':' is written %3a)
                "deb": f"{package}_{version.replace(':', '%3a')}_{arch}.deb",
                "chain": chain,
            }
        package = target
        chain.append(package)
    raise BuildError(f"guest_image_kernel_package: no real kernel package after {' -> '.join(chain)}")


def kernel_tree_info(root: str) -> Dict[str, str]:
    """Locate release, vmlinuz and config in an extracted kernel package."""
    modules = os.path.join(root, "lib", "modules")
    releases = sorted(os.listdir(modules)) if os.path.isdir(modules) else []
    if len(releases) != 1:
        raise BuildError(f"{root}: expected one kernel release under lib/modules, found {releases}")
    release = releases[0]
    info = {
        "release": release,
        "vmlinuz": os.path.join(root, "boot", f"vmlinuz-{release}"),
        "config": os.path.join(root, "boot", f"config-{release}"),
        "modules": os.path.join(modules, release),
    }
    for key in ("vmlinuz", "config"):
        if not os.path.isfile(info[key]):
            raise BuildError(f"{root}: no {os.path.basename(info[key])} in the kernel package")
    return info


def cmd_extract_kernel(args: argparse.Namespace) -> Dict[str, object]:
    """dpkg-deb -x into a temporary dir, depmod there, then rename into place (atomic, idempotent)."""
    dest = args.dest.rstrip("/")
    if os.path.isfile(os.path.join(dest, ".complete")):
        return {"changed": False, **kernel_tree_info(dest)}
    if args.check:
        return {"changed": True, "release": None}
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".extract-", dir=parent)
    try:
        run(["dpkg-deb", "-x", args.deb, work])
        info = kernel_tree_info(work)
        # Debian ships no modules.dep (its postinst runs depmod); generate it from the package's own modules.
        run(["depmod", "-b", work, info["release"]])
        with open(os.path.join(work, ".complete"), "w", encoding="utf-8") as handle:
            handle.write(args.deb + "\n")
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.rename(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {"changed": True, **kernel_tree_info(dest)}


# What the manifest records of a pod kernel build (build_kernel.py's build.json): the inputs, not the timing.
BUILD_RECORD_KEYS = ("digest", "source_package", "source_version", "source_sha256", "fragment_sha256", "toolchain")


def built_kernel(root: str, compression: str) -> Tuple[Dict[str, object], bytes, str]:
    """(manifest record, vmlinux bytes, release) of a kernel build_kernel.py left in ``root``."""
    try:
        record = json.loads(read_text(os.path.join(root, "build.json")))
    except (OSError, ValueError) as exc:
        raise BuildError(f"{root}/build.json: no finished pod kernel build there ({exc}); run the role again") from exc
    vmlinux = read_bytes(os.path.join(root, "vmlinux"))
    if not vmlinux.startswith(b"\x7fELF"):
        raise BuildError(f"{root}/vmlinux is not an ELF kernel")
    if sha256_hex(vmlinux) != record.get("vmlinux_sha256"):
        raise BuildError(f"{root}/vmlinux does not match its build.json (sha256 differs); delete {root} and run the role again")
    option = COMPRESSION_CONFIG[compression]
    if option and not kernel_config_enabled(read_text(os.path.join(root, "config")), option):
        raise BuildError(f"guest_image_compression: the pod kernel cannot unpack {compression!r} initrds ({option} is not set)")
    return {key: record.get(key) for key in BUILD_RECORD_KEYS}, vmlinux, str(record.get("release") or "unknown")


def check_built_in(root: str, wanted: Sequence[str], optional: Sequence[str]) -> ModulePlan:
    """The pod kernel has no modules: each of guest_image_modules must be built in (modules.builtin)."""
    path = os.path.join(root, "modules.builtin")
    if not os.path.isfile(path):
        raise BuildError(f"{path} is missing: delete {root} and run the role again")
    builtin = parse_modules_builtin(read_text(path))
    return resolve_modules({}, wanted, optional, builtin)


def package_version(query: Sequence[str], package: str) -> str:
    return run([*query, package]).strip()


def module_bytes(path: str) -> bytes:
    """A module's ELF bytes; compressed modules are unpacked so busybox insmod can load them."""
    data = read_bytes(path)
    if path.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.endswith(".ko.zst"):
        return subprocess.run(["zstd", "-d", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return data


def uncompressed_module_path(path: str) -> str:
    for suffix in (".ko.xz", ".ko.zst", ".ko.gz"):
        if path.endswith(suffix):
            return path[: -len(suffix)] + ".ko"
    return path


def build_tree(config: Dict[str, object], kernel: Dict[str, str]) -> Tuple[Tree, ModulePlan]:
    """Assemble the initrd tree: merged-/usr links, busybox + applets, binaries + libraries, modules, init."""
    tree = Tree()
    for name in MERGED_DIRS:
        if os.path.islink("/" + name):
            tree.add_symlink(name, os.readlink("/" + name))
    for name in ("dev", "proc", "sys", "run", "tmp", "root", "etc/hyper", "var"):
        tree.add_dir(name, 0o1777 if name == "tmp" else 0o755)
    tree.add_symlink("var/run", "../run")
    tree.add_symlink("var/tmp", "../tmp")
    # The kernel opens /dev/console for init's stdio before any devtmpfs is mounted.
    tree.add_device("dev/console", stat.S_IFCHR | 0o600, 5, 1)

    binaries = config["binaries"]
    assert isinstance(binaries, dict)
    busybox = tree.add_host_path(str(binaries["busybox"]))
    applets = run([str(binaries["busybox"]), "--list-full"]).split()
    for applet in sorted(applets):
        # real files win: never replace something already placed by an applet link
        tree.add_symlink(applet, "/" + busybox, replace=False)
    for key in sorted(binaries):
        if key == "busybox":
            continue
        binary = str(binaries[key])
        tree.add_host_path(binary)
        for lib in parse_ldd(run(["ldd", binary])):
            tree.add_host_path(lib)

    plan = ModulePlan(order=[], builtin=[], absent=[])
    if kernel:
        modules_dir = kernel["modules"]
        deps = parse_modules_dep(read_text(os.path.join(modules_dir, "modules.dep")))
        softdep_file = os.path.join(modules_dir, "modules.softdep")
        builtin_file = os.path.join(modules_dir, "modules.builtin")
        plan = resolve_modules(
            deps,
            [str(m) for m in config["modules"]],  # type: ignore[attr-defined]
            [str(m) for m in config["modules_optional"]],  # type: ignore[attr-defined]
            parse_modules_builtin(read_text(builtin_file)) if os.path.isfile(builtin_file) else set(),
            parse_modules_softdep(read_text(softdep_file)) if os.path.isfile(softdep_file) else {},
        )
        release = kernel["release"]
        order_lines = []
        for rel in plan.order:
            inner = f"/lib/modules/{release}/{uncompressed_module_path(rel)}"
            tree.add_file(inner, module_bytes(os.path.join(modules_dir, rel)))
            order_lines.append(inner)
        tree.add_file("/etc/hyper/modules.order", ("\n".join(order_lines) + "\n").encode() if order_lines else b"")

    # Files built on the host for the guest (the static exec helper): {guest path: {"path", "mode"}}.
    host_files = config.get("host_files") or {}
    assert isinstance(host_files, dict)
    for path in sorted(host_files):
        spec = host_files[path]
        tree.add_file(path, read_bytes(str(spec["path"])), int(str(spec["mode"]), 8))

    init_files = config["init_files"]
    assert isinstance(init_files, dict)
    for path in sorted(init_files):
        spec = init_files[path]
        tree.add_file(path, str(spec["content"]).encode(), int(str(spec["mode"]), 8))
    return tree, plan


def write_if_changed(path: str, data: bytes, check: bool) -> bool:
    """Replace ``path`` atomically when its bytes differ; report whether it (would have) changed."""
    try:
        with open(path, "rb") as handle:
            if sha256_hex(handle.read()) == sha256_hex(data):
                return False
    except FileNotFoundError:
        pass
    if check:
        return True
    handle_fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle_fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def cmd_build(args: argparse.Namespace) -> Dict[str, object]:
    config = json.loads(args.config)
    check = bool(args.check)
    out_dir = str(config["output_dir"])
    compression = str(config["compression"])
    if compression not in COMPRESSIONS:
        raise BuildError(f"guest_image_compression: unknown compression {compression!r}")
    kernel_cfg = config["kernel"]
    initrd_cfg = config.get("initrd")

    kernel: Dict[str, str] = {}
    kernel_file = "vmlinuz"
    build_record: Optional[Dict[str, object]] = None
    if kernel_cfg["source"] == "build":
        # The pod kernel (build_kernel.py): an ELF vmlinux booted through its PVH entry, no modules.
        build_record, vmlinuz, release = built_kernel(str(kernel_cfg["root"]), compression)
        check_built_in(str(kernel_cfg["root"]), [str(m) for m in config["modules"]], [str(m) for m in config["modules_optional"]])
        kernel_file = "vmlinux"
    elif kernel_cfg["source"] == "package":
        kernel = kernel_tree_info(str(kernel_cfg["root"]))
        vmlinuz = read_bytes(kernel["vmlinuz"])
        option = COMPRESSION_CONFIG[compression]
        if option and not kernel_config_enabled(read_text(kernel["config"]), option):
            raise BuildError(f"guest_image_compression: the kernel {kernel['release']} cannot unpack {compression!r} initrds ({option} is not set)")
        release = kernel["release"]
    else:
        vmlinuz = read_bytes(str(kernel_cfg["path"]))
        release = bzimage_release(vmlinuz) or "unknown"

    versions: Dict[str, Optional[str]] = {}
    modules: List[str] = []
    files: Dict[str, str] = {}
    if initrd_cfg:
        initrd = read_bytes(str(initrd_cfg["path"]))
        initrd_compression = detect_compression(initrd)
        versions = {name: None for name in config["components"]}
    else:
        tree, plan = build_tree(config, kernel)
        initrd = compress(cpio_newc(tree.entries.values(), int(config.get("mtime", 0))), compression)
        initrd_compression = compression
        versions = {name: package_version(config["version_query"], pkg) for name, pkg in sorted(config["components"].items())}
        modules = [module_name(p) for p in plan.order]
        files = tree.regular_files()

    manifest = {
        "name": config["name"],
        "format": MANIFEST_FORMAT,
        "kernel": {
            "source": kernel_cfg["source"],
            "package": kernel_cfg.get("package"),
            "version": release,
            "sha256": sha256_hex(vmlinuz),
            **({"file": kernel_file, "build": build_record} if build_record is not None else {}),
        },
        "initrd": {"compression": initrd_compression, "sha256": sha256_hex(initrd), "size": len(initrd)},
        "components": versions,
        "modules": modules,
        "kernel_args": config["kernel_args"],
        "agent_channel": config["agent_channel"],
        "files": files,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()

    if not check:
        os.makedirs(out_dir, mode=0o755, exist_ok=True)
    changed_files = [
        name
        for name, data in ((kernel_file, vmlinuz), ("initrd.img", initrd), ("manifest.json", manifest_bytes))  # manifest last: written = complete
        if write_if_changed(os.path.join(out_dir, name), data, check)
    ]
    # The other kind of kernel file, left from an image built the other way, goes.
    stale = os.path.join(out_dir, "vmlinuz" if kernel_file == "vmlinux" else "vmlinux")
    if os.path.exists(stale):
        changed_files.append(os.path.basename(stale))
        if not check:
            os.unlink(stale)
    return {
        "changed": bool(changed_files),
        "changed_files": changed_files,
        "image_dir": out_dir,
        "kernel_release": release,
        "initrd_sha256": sha256_hex(initrd),
        "initrd_size": len(initrd),
        "modules": modules,
        "manifest": manifest,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="build_initrd.py", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p_resolve = sub.add_parser("resolve-package")
    p_resolve.add_argument("--package", required=True)
    p_extract = sub.add_parser("extract-kernel")
    p_extract.add_argument("--deb", required=True)
    p_extract.add_argument("--dest", required=True)
    p_extract.add_argument("--check", action="store_true")
    p_build = sub.add_parser("build")
    p_build.add_argument("--config", required=True, help="build settings as one JSON object")
    p_build.add_argument("--check", action="store_true", help="compute and compare, write nothing")
    args = parser.parse_args(argv)
    handlers = {"resolve-package": cmd_resolve_package, "extract-kernel": cmd_extract_kernel, "build": cmd_build}
    try:
        result = handlers[args.command](args)
    except BuildError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"build_initrd.py {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
