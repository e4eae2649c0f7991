# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Argument specs shared by the hyper modules; twins of the ``hyper.pods.common`` doc fragments.

``COMMON_ARGUMENT_SPEC`` (fragment ``hyper.pods.common``) is every module's; ``HOST_ARGUMENT_SPEC``
(fragment ``hyper.pods.common.host``) only that of the modules that read the host's state and boot VMs.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import ACCELERATOR_CHOICES, DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI

COMMON_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "uri": {"type": "str", "default": DEFAULT_URI},
}

HOST_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "root": {"type": "path", "default": DEFAULT_ROOT, "aliases": ["hyper_root"]},
    "accelerator": {"type": "str", "default": "auto", "choices": list(ACCELERATOR_CHOICES)},
}


def with_common_args(spec: dict[str, dict[str, Any]], *, host: bool = False) -> dict[str, dict[str, Any]]:
    """A module's own argument spec plus the common options, and with ``host`` the host options (none may be redefined)."""
    shared = {**COMMON_ARGUMENT_SPEC, **(HOST_ARGUMENT_SPEC if host else {})}
    clash = sorted(set(spec) & set(shared))
    if clash:
        raise ValueError(f"options {clash} are common options; do not redefine them")
    merged = {name: dict(option) for name, option in shared.items()}
    merged.update(spec)
    return merged
