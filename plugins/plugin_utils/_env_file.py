# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Controller side of a container's ``env_file`` (action plugin hyper_pod): read the file, merge it into ``env``.

Read as docker_container reads one (docker's ``parse_env_file``): one ``KEY=VALUE`` per line, split at
the first ``=``; surrounding blanks stripped; empty lines and lines starting with ``#`` skipped; the
value taken as it is (quotes included); a line without ``=`` is an error. ``env`` wins over the file.
Values may be secrets: an error names the file and the line number, never a value. The variables
go to the module as ``env``, which it declares ``no_log``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError

# A file larger than this is not an environment file.
MAX_ENV_FILE = 1 << 20


def parse_env_file(text: str, option: str, path: str) -> dict[str, str]:
    """The variables of an environment file's text, in file order (a later line wins)."""
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(option, path, f"line {number} is not KEY=VALUE")
        if "\x00" in line:
            raise SpecError(option, path, f"line {number} holds a NUL character")
        env[key] = value
    return env


def read_env_file(path: str, option: str) -> dict[str, str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_ENV_FILE + 1)
    except OSError as err:
        raise SpecError(option, path, f"cannot read it on the controller: {err.strerror}") from None
    if len(data) > MAX_ENV_FILE:
        raise SpecError(option, path, f"is larger than {MAX_ENV_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(option, path, f"is not UTF-8 (byte {err.start})") from None
    return parse_env_file(text, option, path)


def expand_env_files(args: Mapping[str, Any], find: Callable[[str], str]) -> dict[str, Any]:
    """``args`` with every container's ``env_file`` read (``find`` resolves a path on the controller) and merged into its ``env``."""
    containers = args.get("containers")
    if not isinstance(containers, list) or not any(isinstance(c, Mapping) and c.get("env_file") is not None for c in containers):
        return dict(args)
    out: list[Any] = []
    for index, container in enumerate(containers):
        if not isinstance(container, Mapping) or container.get("env_file") is None:
            out.append(container)
            continue
        option = f"containers[{container.get('name') or index}].env_file"
        given = container["env_file"]
        if not isinstance(given, str) or not given:
            raise SpecError(option, given, "must be the path of a file on the controller")
        env = container.get("env")
        if env is not None and not isinstance(env, Mapping):
            raise SpecError(option.replace(".env_file", ".env"), env, "must be a mapping of variable names to strings")
        try:
            found = find(given)
        except SpecError as err:
            raise SpecError(option, given, err.reason) from None
        merged = {**read_env_file(found, option), **(env or {})}
        out.append({**{k: v for k, v in container.items() if k != "env_file"}, "env": merged})
    return {**args, "containers": out}
