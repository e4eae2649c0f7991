# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation that must stay in step: shared RETURN blocks, doc fragments and their argument specs."""

from __future__ import annotations

from typing import Any

import yaml

from ansible_collections.hyper.pods.plugins.doc_fragments import services as services_fragment
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.args import SERVICE_OPTIONS
from ansible_collections.hyper.pods.plugins.modules import hyper_pod, hyper_pod_info


def test_pod_return_blocks_are_identical() -> None:
    """hyper_pod's RV(pod) and each of hyper_pod_info's RV(pods) describe the same dict."""
    pod = yaml.safe_load(hyper_pod.RETURN)["pod"]["contains"]
    pods = yaml.safe_load(hyper_pod_info.RETURN)["pods"]["contains"]
    assert pod == pods


def _compare(doc: dict[str, Any], spec: dict[str, Any], where: str) -> list[str]:
    problems = []
    if sorted(doc) != sorted(spec):
        return [f"{where}: documented {sorted(doc)} but the argument spec has {sorted(spec)}"]
    for name in doc:
        for key in ("type", "default", "choices", "required", "elements"):
            documented, declared = doc[name].get(key), spec[name].get(key)
            if key == "required":
                documented, declared = bool(documented), bool(declared)
            if key == "default" and declared == [] and documented is None:
                continue  # a list's empty default need not be documented
            if documented != declared:
                problems.append(f"{where}.{name}.{key}: documented {documented!r}, declared {declared!r}")
        if "options" in spec[name] or "suboptions" in doc[name]:
            problems += _compare(doc[name].get("suboptions") or {}, spec[name].get("options") or {}, f"{where}.{name}")
    return problems


def test_services_fragment_is_the_twin_of_service_options() -> None:
    doc = yaml.safe_load(services_fragment.ModuleDocFragment.DOCUMENTATION)["options"]["services"]
    assert _compare(doc["suboptions"], SERVICE_OPTIONS, "services") == []


def test_container_options_are_documented_as_declared() -> None:
    """hyper_pod's containers[] documentation and argument spec are twins; every container key of the library is an option."""
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import HEALTH_KEYS
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import CONTAINER_KEYS

    doc = yaml.safe_load(hyper_pod.DOCUMENTATION)["options"]["containers"]["suboptions"]
    assert _compare(doc, hyper_pod.CONTAINER_OPTIONS, "containers") == []
    assert sorted(hyper_pod.CONTAINER_OPTIONS) == sorted(CONTAINER_KEYS)
    healthcheck: Any = hyper_pod.CONTAINER_OPTIONS["healthcheck"]
    assert sorted(healthcheck["options"]) == sorted(HEALTH_KEYS)
