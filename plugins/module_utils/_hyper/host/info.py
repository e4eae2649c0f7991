# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""What the host role learnt about this hyper host (``<root>/host.json``), and accelerator choice."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError

DEFAULT_ROOT = "/var/lib/hyper"
HOST_FILE = "host.json"
ACCELERATOR_CHOICES = ("auto", "kvm", "tcg")
_RUN_HOST_ROLE = "run the hyper.pods.host role first"


@dataclass(frozen=True)
class HostInfo:
    accelerator: str
    format: int
    extra: dict[str, Any] = field(default_factory=dict)


def host_file(root: str) -> str:
    return os.path.join(root, HOST_FILE)


def parse_host_info(text: str, path: str = HOST_FILE) -> HostInfo:
    """Parse host.json text; unknown keys are kept in ``extra``."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ImageError(f"{path} is not valid JSON ({err}); {_RUN_HOST_ROLE} again") from None
    if not isinstance(data, dict):
        raise ImageError(f"{path} must hold a JSON object; {_RUN_HOST_ROLE} again")
    accelerator = data.get("accelerator")
    if accelerator not in ("kvm", "tcg"):
        raise ImageError(f"{path}: accelerator is {accelerator!r}, expected 'kvm' or 'tcg'; {_RUN_HOST_ROLE} again")
    fmt = data.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise ImageError(f"{path}: format is {fmt!r}, expected an integer")
    extra = {k: v for k, v in data.items() if k not in ("accelerator", "format")}
    return HostInfo(accelerator=accelerator, format=fmt, extra=extra)


def load_host_info(root: str = DEFAULT_ROOT) -> HostInfo:
    path = host_file(root)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ImageError(f"{path} does not exist: {_RUN_HOST_ROLE}") from None
    except OSError as err:
        raise ImageError(f"cannot read {path}: {err.strerror}") from None
    return parse_host_info(text, path)


def resolve_accelerator(requested: str, root: str = DEFAULT_ROOT) -> str:
    """'kvm' or 'tcg' as asked; 'auto' takes what the host role found to work on this host."""
    if requested not in ACCELERATOR_CHOICES:
        raise SpecError("accelerator", requested, f"must be one of {', '.join(ACCELERATOR_CHOICES)}")
    if requested != "auto":
        return requested
    path = host_file(root)
    if not os.path.exists(path):
        raise SpecError("accelerator", requested, f"{path} does not exist: {_RUN_HOST_ROLE}, or set accelerator to kvm or tcg")
    return load_host_info(root).accelerator
