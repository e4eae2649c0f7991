# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""hyper_pod_info's host-service part: whether hyper-hostd runs, and each pod's events (``events``, ``since``)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import read_events
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import service_status
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.view import pod_info


def check_since(value: object) -> float:
    if value is None:
        return 0.0
    try:
        since = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SpecError("since", value, "must be a time in seconds since the epoch") from None
    if since < 0:
        raise SpecError("since", value, "must not be negative")
    return since


def pod_info_with_events(params: Mapping[str, Any], check_mode: bool = False, session: Optional[PodSession] = None) -> dict[str, Any]:
    """pod_info, plus ``hostd`` (the host service's status) and, with ``events``, each pod's ``events`` after ``since``."""
    since = check_since(params.get("since"))
    root = str(params.get("root") or DEFAULT_ROOT)
    result = pod_info(params, check_mode, session)
    result["hostd"] = service_status(root)
    if params.get("events"):
        for pod in result["pods"]:
            pod["events"] = read_events(root, str(pod["name"]), since)
    return result
