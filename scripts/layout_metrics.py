# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Figures of the library's layout, read from the source alone (nothing is imported or run).

    python3 scripts/layout_metrics.py [--json]

- files: Python files under plugins/module_utils/_hyper/ (recursively) and their lines;
- longest import chain: the longest path of imports between library files;
- pod start: library files a reader opens to follow hyper_pod (module and action plugin): the
  files they import, transitively, plus the guest-side files the guest image ships;
- hyper_exec / connection: library files those plugins load (transitive imports);
- string-key lookups: ``x["key"]`` and ``x.get("key")`` with a literal key in the library, not
  counting the module's own parameters (``params``) or the user's raw values (``value``);
- largest function: the longest function or method of the library, in lines.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from functools import cache
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "ansible_collections.hyper.pods."
LIB = os.path.join(ROOT, "plugins", "module_utils", "_hyper")
# Receivers whose string keys are the user's options, not the stored spec.
INPUT_NAMES = {"params", "value", "args", "item", "raw"}


def module_path(name: str) -> str | None:
    """The file of a collection module name, or None when it is not one of ours."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX) :].split(".")
    base = os.path.join(ROOT, *parts)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


@cache
def imports_of(path: str) -> frozenset[str]:
    """The collection files ``path`` imports (``from X import name`` may name a submodule too)."""
    tree = ast.parse(source(path), path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            target = module_path(node.module)
            if target:
                found.add(target)
            for alias in node.names:
                sub = module_path(f"{node.module}.{alias.name}")
                if sub:
                    found.add(sub)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = module_path(alias.name)
                if target:
                    found.add(target)
    # A package's __init__ is loaded with any of its modules.
    for target in list(found):
        directory = os.path.dirname(target)
        while directory.startswith(LIB) and directory != LIB:
            init = os.path.join(directory, "__init__.py")
            if os.path.isfile(init) and init != path:
                found.add(init)
            directory = os.path.dirname(directory)
    found.discard(path)
    return frozenset(found)


def closure(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        for target in imports_of(current):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    # An empty package __init__ is loaded, but nobody reads it.
    return {p for p in seen if p.startswith(LIB) and not (p.endswith("__init__.py") and os.path.getsize(p) == 0)}


def library_files() -> list[str]:
    """The library's Python files, empty package ``__init__.py`` files left out."""
    out = []
    for directory, _dirs, files in os.walk(LIB):
        out += [os.path.join(directory, f) for f in files if f.endswith(".py")]
    return sorted(p for p in out if not (p.endswith("__init__.py") and os.path.getsize(p) == 0))


def longest_chain(files: list[str]) -> list[str]:
    @cache
    def longest_from(path: str) -> tuple[str, ...]:
        best: tuple[str, ...] = ()
        for target in imports_of(path):
            if target.startswith(LIB) and not target.endswith("__init__.py"):
                chain = longest_from(target)
                if len(chain) > len(best):
                    best = chain
        return (path, *best)

    best: tuple[str, ...] = ()
    for path in files:
        chain = longest_from(path)
        if len(chain) > len(best):
            best = chain
    return list(best)


def source(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def lines(paths: set[str] | list[str]) -> int:
    return sum(source(p).count("\n") for p in paths)


def string_lookups(files: list[str]) -> int:
    count = 0
    for path in files:
        tree = ast.parse(source(path), path)
        for node in ast.walk(tree):
            receiver: ast.AST | None = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                receiver = node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                receiver = node.func.value
            if receiver is None:
                continue
            if isinstance(receiver, ast.Name) and receiver.id in INPUT_NAMES:
                continue
            count += 1
    return count


def largest_function(files: list[str]) -> tuple[str, int]:
    best = ("", 0)
    for path in files:
        tree = ast.parse(source(path), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno:
                size = node.end_lineno - node.lineno + 1
                if size > best[1]:
                    best = (f"{os.path.relpath(path, LIB)}:{node.name}", size)
    return best


def guest_files() -> list[str]:
    """The guest-side files of the guest image (init, scripts) a reader follows for a pod start."""
    out = []
    for sub in ("roles/guest_image/templates", "roles/guest_image/files"):
        directory = os.path.join(ROOT, sub)
        if os.path.isdir(directory):
            out += [os.path.join(directory, f) for f in sorted(os.listdir(directory)) if os.path.isfile(os.path.join(directory, f))]
    return out


def metrics() -> dict[str, Any]:
    files = library_files()
    pod_start = closure(os.path.join(ROOT, "plugins/modules/hyper_pod.py")) | closure(os.path.join(ROOT, "plugins/action/hyper_pod.py"))
    exec_files = closure(os.path.join(ROOT, "plugins/modules/hyper_exec.py"))
    connection_files = closure(os.path.join(ROOT, "plugins/connection/hyper.py"))
    chain = longest_chain(files)
    name, size = largest_function(files)
    guest = guest_files()
    return {
        "library_files": len(files),
        "library_lines": lines(files),
        "longest_import_chain": len(chain),
        "longest_import_chain_files": [os.path.relpath(p, LIB) for p in chain],
        "pod_start_files": len(pod_start) + len(guest),
        "pod_start_python_files": len(pod_start),
        "pod_start_python_lines": lines(pod_start),
        "pod_start_guest_files": len(guest),
        "hyper_exec_files": len(exec_files),
        "hyper_exec_file_list": sorted(os.path.relpath(p, LIB) for p in exec_files),
        "hyper_exec_lines": lines(exec_files),
        "connection_files": len(connection_files),
        "connection_lines": lines(connection_files),
        "string_key_lookups": string_lookups(files),
        "largest_function": name,
        "largest_function_lines": size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    figures = metrics()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in figures.items():
        if isinstance(value, list):
            value = (" -> " if key.endswith("chain_files") else ", ").join(value)
        print(f"{key:30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
