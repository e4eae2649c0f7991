# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The from_kube filter's per-container options: a container's securityContext hardening and resource limits.

``capabilities.add``/``drop`` become ``cap_add``/``cap_drop`` (Kubernetes' names, without ``CAP_``, are
docker's); ``readOnlyRootFilesystem: true`` becomes ``read_only``; ``allowPrivilegeEscalation: false``
becomes ``no_new_privileges``; ``resources.limits`` ``cpu`` and ``memory`` become ``cpus`` and
``memory`` (enforced in the guest, as the kubelet enforces limits; requests only size the VM).
hyper_pod checks the values (a capability it does not know, a memory limit below 6 MiB).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.plugin_utils._convert import ConversionError, mapping, quantity

HARDENING_FIELDS = ("capabilities", "readOnlyRootFilesystem", "allowPrivilegeEscalation")


def _flag(value: object, where: str) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise ConversionError(where, f"must be true or false, not {value!r}")
    return value


def _names(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConversionError(where, "must be a list of capability names")
    return list(value)


def hardening(security: Mapping[str, Any], where: str) -> dict[str, Any]:
    """hyper_pod container options from a container's securityContext (only what asks for something)."""
    options: dict[str, Any] = {}
    caps = security.get("capabilities")
    if caps is not None:
        caps = mapping(caps, f"{where}.capabilities")
        unknown = sorted(set(caps) - {"add", "drop"})
        if unknown:
            raise ConversionError(f"{where}.capabilities.{unknown[0]}", "is not a field from_kube knows (add, drop)")
        add, drop = _names(caps.get("add"), f"{where}.capabilities.add"), _names(caps.get("drop"), f"{where}.capabilities.drop")
        if add:
            options["cap_add"] = add
        if drop:
            options["cap_drop"] = drop
    if _flag(security.get("readOnlyRootFilesystem"), f"{where}.readOnlyRootFilesystem"):
        options["read_only"] = True
    if _flag(security.get("allowPrivilegeEscalation"), f"{where}.allowPrivilegeEscalation") is False:
        options["no_new_privileges"] = True
    return options


def limits(resources: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``cpus`` and ``memory`` (bytes, as ``Nb``) from a container's resource limits."""
    options: dict[str, Any] = {}
    given = mapping(resources.get("limits") or {}, f"{where}.limits")
    if given.get("cpu") is not None:
        options["cpus"] = round(quantity(given["cpu"], f"{where}.limits.cpu"), 3)
    if given.get("memory") is not None:
        options["memory"] = f"{int(quantity(given['memory'], f'{where}.limits.memory'))}b"
    return options
