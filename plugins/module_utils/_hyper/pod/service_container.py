# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The pod's service container when hyper_service added it (pure).

hyper_service on a running pod without its haproxy container adds it in place (pod/inplace.py) and
marks it in the stored spec (``"service": true``). A later hyper_pod task that does not list it keeps
it: the first service on a pod needs no change to the pod's task.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import check_container_name

SERVICE_KEY = "service"
# hyper_pod's internal parameter by which hyper_service asks for the container: {"name", "image"}.
ADD_PARAM = "_add_service_container"


def keep_service_containers(desired: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """``desired`` with the current spec's service containers: marked where listed, appended (as stored) where not."""
    kept = [c for c in current.get("containers") or [] if isinstance(c, Mapping) and c.get(SERVICE_KEY)]
    out = copy.deepcopy(dict(desired))
    if not kept:
        return out
    containers = out.setdefault("containers", [])
    names = {str(c.get("name")) for c in containers}
    for container in containers:
        if any(container.get("name") == k.get("name") for k in kept):
            container[SERVICE_KEY] = True
    containers += [copy.deepcopy(dict(c)) for c in kept if str(c.get("name")) not in names]
    return out


def with_service_container(
    desired: Mapping[str, Any], current: Mapping[str, Any], request: Mapping[str, Any], stored_container: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """The current spec's containers plus the service container of ``request`` ({"name", "image"}), marked; ``desired`` otherwise.

    ``stored_container`` turns the request into its stored form (normalised, with its image's digest).
    """
    name = check_container_name(request.get("name"), "container")
    if not isinstance(request.get("image"), str) or not request.get("image"):
        raise SpecError("service_image", request.get("image"), "must be an image reference")
    out = copy.deepcopy(dict(desired))
    containers = [copy.deepcopy(dict(c)) for c in current.get("containers") or []]
    if not any(c.get("name") == name for c in containers):
        container = stored_container({"name": name, "image": request["image"]})
        container[SERVICE_KEY] = True
        containers.append(container)
    out["containers"] = containers
    return out
