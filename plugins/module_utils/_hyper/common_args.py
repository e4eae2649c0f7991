# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Argument spec shared by every hyper module; twin of the ``hyper.pods.common`` doc fragment."""

from __future__ import annotations

from typing import Any

from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import ACCELERATOR_CHOICES, DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI

COMMON_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "uri": {"type": "str", "default": DEFAULT_URI},
    "root": {"type": "path", "default": DEFAULT_ROOT, "aliases": ["hyper_root"]},
    "accelerator": {"type": "str", "default": "auto", "choices": list(ACCELERATOR_CHOICES)},
}


def with_common_args(spec: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A module's own argument spec plus the common options (a module may not redefine them)."""
    clash = sorted(set(spec) & set(COMMON_ARGUMENT_SPEC))
    if clash:
        raise ValueError(f"options {clash} are common options; do not redefine them")
    merged = {name: dict(option) for name, option in COMMON_ARGUMENT_SPEC.items()}
    merged.update(spec)
    return merged
