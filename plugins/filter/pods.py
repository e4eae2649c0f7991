# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters from_kube and from_hyperd: Kubernetes manifests and hyperd pod files as hyper_pod options.

The documentation is in from_kube.yml and from_hyperd.yml; the conversions in
plugins/plugin_utils/_kube.py and _hyperd.py.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ansible.errors import AnsibleFilterError

from ansible_collections.hyper.pods.plugins.plugin_utils._convert import ConversionError
from ansible_collections.hyper.pods.plugins.plugin_utils._hyperd import DEFAULT_EMPTY_VOLUME_SIZE
from ansible_collections.hyper.pods.plugins.plugin_utils._hyperd import from_hyperd as _from_hyperd
from ansible_collections.hyper.pods.plugins.plugin_utils._kube import DEFAULT_EMPTYDIR_SIZE
from ansible_collections.hyper.pods.plugins.plugin_utils._kube import from_kube as _from_kube


def from_kube(manifest: Any, name: Optional[str] = None, strict: bool = False, emptydir_size: str = DEFAULT_EMPTYDIR_SIZE) -> dict[str, Any]:
    try:
        return _from_kube(manifest, name=name, strict=bool(strict), emptydir_size=str(emptydir_size))
    except ConversionError as err:
        raise AnsibleFilterError(f"hyper.pods.from_kube: {err}") from None


def from_hyperd(pod_file: Any, name: Optional[str] = None, strict: bool = False, volume_size: str = DEFAULT_EMPTY_VOLUME_SIZE) -> dict[str, Any]:
    try:
        return _from_hyperd(pod_file, name=name, strict=bool(strict), volume_size=str(volume_size))
    except ConversionError as err:
        raise AnsibleFilterError(f"hyper.pods.from_hyperd: {err}") from None


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"from_kube": from_kube, "from_hyperd": from_hyperd}
