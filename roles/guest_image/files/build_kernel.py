# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the hyper.pods pod kernel from the distribution's kernel source package.

Shipped in the ``hyper.pods.guest_image`` role and run by it on the managed host with the
host's own python3 (``python3 - <subcommand> ...``, the script arriving on stdin), so it uses
the standard library only and supports Python 3.9+.

Subcommands print one JSON object on stdout:

``digest``  the cache key of a build (read only): sha256 over the source package, the config
            fragment, the compiler and linker versions and this script's build settings.
``build``   unpack the source package (``dpkg-deb``, then the tarball inside), merge the
            fragment over ``make allnoconfig`` with ``scripts/kconfig/merge_config.sh``, check
            that every option of the fragment kept its value, compile ``vmlinux`` and keep it
            (with its ``.config`` and ``modules.builtin``) in ``<cache>/pod-<digest>/``. A finished build is never redone.

The build is reproducible: timestamp, user, host and build number are pinned, so the same
source, fragment and toolchain give the same bytes (the integration test compares a build with
a reference build of the same inputs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

BUILD_FORMAT = 1
ARCH = "x86_64"
# Pinned so that the same inputs give the same bytes (Documentation/kbuild/reproducible-builds.rst).
BUILD_ENV = {
    "ARCH": ARCH,
    "KBUILD_BUILD_TIMESTAMP": "1970-01-01 00:00:00 UTC",
    "KBUILD_BUILD_USER": "hyper",
    "KBUILD_BUILD_HOST": "hyper",
    "KBUILD_BUILD_VERSION": "1",
    "LC_ALL": "C",
    "TZ": "UTC",
}
# Commands the build needs on the host, with the Debian package that has them (bindep.txt lists them too).
TOOLS = {
    "dpkg-deb": "dpkg",
    "tar": "tar",
    "xz": "xz-utils",
    "make": "make",
    "gcc": "gcc",
    "ld": "binutils",
    "bison": "bison",
    "flex": "flex",
    "bc": "bc",
    "perl": "perl",
}
# Headers the build needs (objtool links libelf on x86_64).
HEADERS = {"/usr/include/gelf.h": "libelf-dev"}
OPTION_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET_LINE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
LOG_TAIL = 40


class BuildError(Exception):
    """An error the user can act on; printed as the task's failure message."""


# --------------------------------------------------------------------------- pure helpers


def parse_config(text: str) -> Dict[str, Optional[str]]:
    """A Kconfig file or fragment: option -> value, None for ``# CONFIG_X is not set``; other comments ignored.

    A fragment that sets one option twice is an error (merge_config.sh would only warn).
    """
    options: Dict[str, Optional[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = OPTION_LINE.match(line)
        unset = UNSET_LINE.match(line)
        if match:
            name, value = match.group(1), match.group(2)
            if value.startswith('"') != value.endswith('"') or (" " in value and not value.startswith('"')):
                raise BuildError(f"line {number}: {raw!r}: a value is y, n, m, a number or a quoted string (reasons go on the line above)")
        elif unset:
            name, value = unset.group(1), None
        elif line.startswith("#"):
            continue
        else:
            raise BuildError(f"line {number}: {raw!r} is neither CONFIG_X=value, '# CONFIG_X is not set' nor a comment")
        if name in options:
            raise BuildError(f"line {number}: {name} is set twice")
        options[name] = None if value == "n" else value
    return options


def config_mismatches(fragment: Dict[str, Optional[str]], final: Dict[str, Optional[str]]) -> List[str]:
    """Options of the fragment whose value the final .config does not have (a typo, or a dependency left off)."""
    problems = []
    for name, wanted in fragment.items():
        got = final.get(name)
        if got != wanted:
            problems.append(f"{name}={wanted if wanted is not None else 'n'} (got {got if got is not None else 'n, or not offered'})")
    return problems


def build_digest(source_sha256: str, fragment: str, toolchain: Sequence[str]) -> str:
    """The cache key: what decides the bytes of vmlinux."""
    key = {
        "format": BUILD_FORMAT,
        "arch": ARCH,
        "env": BUILD_ENV,
        "source_sha256": source_sha256,
        "fragment_sha256": hashlib.sha256(fragment.encode()).hexdigest(),
        "toolchain": list(toolchain),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def missing_tools(which: Dict[str, Optional[str]], headers: Dict[str, bool]) -> List[str]:
    """Debian packages to install, from ``which`` (command -> path or None) and ``headers`` (path -> exists)."""
    packages = {TOOLS[c] for c, path in which.items() if path is None}
    packages |= {HEADERS[h] for h, exists in headers.items() if not exists}
    return sorted(packages)


def parse_jobs(value: object, cpus: int) -> int:
    """``0`` (or nothing): one job per CPU; else the number given, at least 1."""
    try:
        jobs = int(str(value or 0))
    except ValueError:
        raise BuildError(f"guest_image_kernel_build_jobs={value!r} must be a whole number (0: one per CPU)") from None
    if jobs < 0:
        raise BuildError(f"guest_image_kernel_build_jobs={value!r} must be 0 or more")
    return jobs or max(cpus, 1)


def kernel_release(text: str) -> str:
    release = text.strip()
    if not release or not re.fullmatch(r"[A-Za-z0-9._+-]+", release):
        raise BuildError(f"unexpected kernel release {release!r}")
    return release


# --------------------------------------------------------------------------- host side


def run(argv: Sequence[str], cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None, log: Optional[str] = None) -> str:
    """Run argv (a list, never a shell string); output into ``log`` when given, else returned."""
    try:
        if log is not None:
            with open(log, "ab") as handle:
                handle.write(("$ " + " ".join(argv) + "\n").encode())
                handle.flush()
                proc = subprocess.run(list(argv), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
            output = ""
        else:
            done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, check=False)
            proc, output = done, done.stdout.decode(errors="replace")
    except FileNotFoundError as exc:
        raise BuildError(f"command not found: {argv[0]}") from exc
    if proc.returncode != 0:
        if log is not None:
            with open(log, "rb") as handle:
                tail = handle.read().decode(errors="replace").splitlines()[-LOG_TAIL:]
            message = "\n".join(tail)
        else:
            message = done.stderr.decode(errors="replace").strip() or output.strip()
        raise BuildError(f"{' '.join(argv)} failed (rc={proc.returncode}):\n{message}")
    return output


def toolchain_versions() -> Tuple[str, str]:
    return run(["gcc", "--version"]).splitlines()[0], run(["ld", "--version"]).splitlines()[0]


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc
    return digest.hexdigest()


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from exc


def load(config: Dict[str, object]) -> Tuple[str, str, str]:
    """(fragment text, source sha256, digest) of a build request."""
    fragment = read_text(str(config["fragment"]))
    parse_config(fragment)  # fail early on a malformed fragment
    source_sha256 = str(config.get("source_sha256") or "") or sha256_file(str(config["source_deb"]))
    return fragment, source_sha256, build_digest(source_sha256, fragment, toolchain_versions())


def cached(dest: str) -> Optional[Dict[str, object]]:
    try:
        with open(os.path.join(dest, "build.json"), encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    if not os.path.isfile(os.path.join(dest, "vmlinux")) or not isinstance(info, dict):
        return None
    return info


def cmd_digest(args: argparse.Namespace) -> Dict[str, object]:
    config = json.loads(args.config)
    _fragment, _source, digest = load(config)
    dest = os.path.join(str(config["cache_dir"]), f"pod-{digest[:16]}")
    return {"changed": False, "digest": digest, "dir": dest, "cached": cached(dest) is not None}


def cmd_build(args: argparse.Namespace) -> Dict[str, object]:
    config = json.loads(args.config)
    fragment, source_sha256, digest = load(config)
    cache_dir = str(config["cache_dir"])
    dest = os.path.join(cache_dir, f"pod-{digest[:16]}")
    info = cached(dest)
    if info is not None:
        return {"changed": False, **info}
    if args.check:
        return {"changed": True, "digest": digest, "dir": dest}
    which = {tool: shutil.which(tool) for tool in TOOLS}
    packages = missing_tools(which, {h: os.path.isfile(h) for h in HEADERS})
    if packages:
        raise BuildError(f"guest_image_kernel_build: the kernel build needs {', '.join(packages)} on the host (bindep.txt, profile test)")
    jobs = parse_jobs(config.get("jobs"), os.cpu_count() or 1)

    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".pod-{digest[:16]}-", dir=cache_dir)
    log = os.path.join(work, "build.log")
    started = time.monotonic()
    try:
        # 1. the tarball inside the source package, then the tree inside the tarball
        run(["dpkg-deb", "-x", str(config["source_deb"]), os.path.join(work, "deb")], log=log)
        unpacked = os.walk(os.path.join(work, "deb"))
        tarballs = sorted(os.path.join(root, name) for root, _dirs, names in unpacked for name in names if re.match(r"linux-source-.*\.tar\.xz$", name))
        if len(tarballs) != 1:
            raise BuildError(f"{config['source_deb']}: expected one linux-source-*.tar.xz, found {[os.path.basename(t) for t in tarballs]}")
        run(["tar", "-x", "-J", "-f", tarballs[0], "-C", work], log=log)
        shutil.rmtree(os.path.join(work, "deb"))
        trees = [n for n in os.listdir(work) if n.startswith("linux-source-") and os.path.isdir(os.path.join(work, n))]
        if len(trees) != 1:
            raise BuildError(f"{tarballs[0]}: expected one linux-source-* directory, found {trees}")
        src, out = os.path.join(work, trees[0]), os.path.join(work, "out")
        os.makedirs(out)
        fragment_path = os.path.join(work, "pod_kernel.config")
        with open(fragment_path, "w", encoding="utf-8") as handle:
            handle.write(fragment)
        env = {**os.environ, **BUILD_ENV}
        # 2. allnoconfig + fragment, and the check that nothing of the fragment was dropped
        run(["scripts/kconfig/merge_config.sh", "-n", "-O", out, fragment_path], cwd=src, env=env, log=log)
        final_config = read_text(os.path.join(out, ".config"))
        problems = config_mismatches(parse_config(fragment), parse_config(final_config))
        if problems:
            raise BuildError("the pod kernel config lost options of the fragment (misspelt, or a dependency is off): " + "; ".join(problems))
        # 3. the kernel
        run(["make", "-C", src, f"O={out}", f"-j{jobs}", "vmlinux"], env=env, log=log)
        release = kernel_release(run(["make", "-s", "-C", src, f"O={out}", "kernelrelease"], env=env))
        result = os.path.join(work, "result")
        os.makedirs(result)
        shutil.copyfile(os.path.join(out, "vmlinux"), os.path.join(result, "vmlinux"))
        shutil.copyfile(os.path.join(out, ".config"), os.path.join(result, "config"))
        # What is built in, by module name (the role checks guest_image_modules against it).
        shutil.copyfile(os.path.join(out, "modules.builtin"), os.path.join(result, "modules.builtin"))
        shutil.copyfile(log, os.path.join(result, "build.log"))
        info = {
            "digest": digest,
            "dir": dest,
            "release": release,
            "source_package": config.get("source_package"),
            "source_version": config.get("source_version"),
            "source_sha256": source_sha256,
            "fragment_sha256": hashlib.sha256(fragment.encode()).hexdigest(),
            "toolchain": list(toolchain_versions()),
            "vmlinux_sha256": sha256_file(os.path.join(result, "vmlinux")),
            "build_seconds": round(time.monotonic() - started, 1),
            "jobs": jobs,
        }
        with open(os.path.join(result, "build.json"), "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
            handle.write("\n")
        for name in ("vmlinux", "config", "modules.builtin", "build.log", "build.json"):
            os.chmod(os.path.join(result, name), 0o644)
        os.chmod(result, 0o755)
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.rename(result, dest)  # build.json inside: written = complete
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"changed": True, **info}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="build_kernel.py", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("digest", "build"):
        command = sub.add_parser(name)
        command.add_argument("--config", required=True, help="build settings as one JSON object")
        command.add_argument("--check", action="store_true", help="report, build nothing")
    args = parser.parse_args(argv)
    handlers = {"digest": cmd_digest, "build": cmd_build}
    try:
        result = handlers[args.command](args)
    except BuildError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        print(f"build_kernel.py {args.command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
