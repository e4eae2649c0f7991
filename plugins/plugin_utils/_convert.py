# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""What the from_kube and from_hyperd filters share: the error, the warnings, field tables, quantities.

A conversion reads every field of its input. A field is either mapped to a hyper_pod option,
listed in the result's ``warnings`` (it does not matter to a pod on one host: scheduling,
replicas, probes), or an error that names the field and says why. Nothing is dropped silently:
a field the tables do not know is an error too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import RESTART_POLICIES
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import POD_NAME
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import MIN_MEMORY_MIB
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import VOLUME_NAME

# hyper_pod's own rules, from the library: the filters' output passes hyper_pod's checks.
__all__ = ["MIN_MEMORY_MIB", "POD_NAME", "RESTART_POLICIES", "VOLUME_NAME"]

_QUANTITY = re.compile(r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(?:[eE]([+-]?[0-9]+))?([a-zA-Z]*)$")
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


class ConversionError(Exception):
    """A field of the input that hyper_pod cannot honour, or a value that is not valid."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass
class Converter:
    """The warnings of one conversion, and the checks every field goes through."""

    source: str
    strict: bool = False
    warnings: list[str] = field(default_factory=list)

    def warn(self, where: str, message: str) -> None:
        """A field that does not change how the pod runs on one host; with strict=true it is an error."""
        if self.strict:
            raise ConversionError(where, f"{message} (strict=true makes this an error)")
        self.warnings.append(f"{self.source} {where}: {message}")

    def check_fields(self, value: Mapping[str, Any], where: str, known: Sequence[str], warned: Mapping[str, str], refused: Mapping[str, str]) -> None:
        """Every key of ``value`` must be known (mapped by the caller), warned about, or refused with a reason.

        A refused field set to the value that asks for nothing (``hostNetwork: false``,
        ``initContainers: []``, ``allowPrivilegeEscalation: true``) is no request and passes.
        """
        for key in value:
            if value[key] is None or key in known:
                continue
            path = f"{where}.{key}" if where else str(key)
            if key in refused and not asks_nothing(key, value[key]):
                raise ConversionError(path, refused[key])
            if key in refused:
                continue
            if key in warned:
                self.warn(path, warned[key])
                continue
            raise ConversionError(path, f"is not a field {self.source} knows how to convert (known: {', '.join(sorted([*known, *warned, *refused]))})")


# Fields whose default is true (false asks for something hyper_pod cannot give).
TRUE_BY_DEFAULT = frozenset({"allowPrivilegeEscalation", "hostUsers"})


def asks_nothing(key: str, value: object) -> bool:
    """True when a field holds its Kubernetes default, which asks for nothing."""
    if key in TRUE_BY_DEFAULT:
        return value is True
    if key == "procMount":
        return value == "Default"
    return value is False or (not isinstance(value, bool) and value in ("", [], {}))


def mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConversionError(where, f"must be a mapping, not {type(value).__name__}")
    return value


def items(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConversionError(where, f"must be a list, not {type(value).__name__}")
    return list(value)


def text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConversionError(where, f"must be a non-empty string, not {value!r}")
    return value


def argv(value: object, where: str) -> Optional[list[str]]:
    if value is None:
        return None
    values = items(value, where)
    if not all(isinstance(arg, str) for arg in values):
        raise ConversionError(where, "must be a list of strings")
    return [str(arg) for arg in values]


def port_number(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConversionError(where, f"must be a port number between 1 and 65535, not {value!r}")
    return value


def pod_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not POD_NAME.fullmatch(value):
        raise ConversionError(
            where, f"{value!r} is not a hyper pod name (1-63 lower-case letters, digits and '-', starting and ending with a letter or digit); pass name=..."
        )
    return value


def string_map(value: object, where: str) -> dict[str, str]:
    result = {}
    for key, val in mapping(value, where).items():
        if not isinstance(val, str):
            raise ConversionError(f"{where}.{key}", f"must be a string, not {type(val).__name__}")
        result[str(key)] = val
    return result


def quantity(value: object, where: str) -> float:
    """A Kubernetes quantity (``500m``, ``0.5``, ``64Mi``, ``1G``, ``1e3``, a number) as a plain number."""
    if isinstance(value, bool):
        raise ConversionError(where, f"{value!r} is not a quantity")
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if match is None or (match.group(2) and match.group(3)):
        raise ConversionError(where, f"{value!r} is not a quantity such as 500m, 2, 64Mi or 1G")
    number = float(match.group(1)) * (10 ** int(match.group(2)) if match.group(2) else 1)
    suffix = match.group(3)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    raise ConversionError(where, f"{value!r} has an unknown suffix {suffix!r} (use Ki, Mi, Gi, Ti, k, M, G, T or m)")


def mebibytes(amount: float) -> int:
    """Bytes → MiB, rounded up."""
    return max(1, math.ceil(amount / (1 << 20)))


def volume_size(amount: float) -> str:
    """Bytes → a hyper_pod volume size (``NNNM``), rounded up to whole MiB, at least 16M."""
    return f"{max(16, mebibytes(amount))}M"
