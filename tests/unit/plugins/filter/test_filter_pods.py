# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter plugin file: both filters registered, conversion errors as AnsibleFilterError naming the filter and field."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hyper.pods.plugins.filter.pods import FilterModule

FILTERS = FilterModule().filters()


def test_both_filters_are_registered() -> None:
    assert sorted(FILTERS) == ["from_hyperd", "from_kube"]


def test_from_kube_and_from_hyperd_convert() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "web"}, "spec": {"containers": [{"name": "httpd", "image": "busybox"}]}}
    assert FILTERS["from_kube"](pod)["containers"][0]["name"] == "httpd"
    assert FILTERS["from_kube"](pod, name="other")["name"] == "other"
    assert FILTERS["from_hyperd"]({"id": "web", "containers": [{"name": "c", "image": "busybox"}]}, volume_size="2G")["name"] == "web"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("from_kube", {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"hostNetwork": True, "containers": []}}, "hyper.pods.from_kube: spec.hostNetwork: "),
        ("from_kube", "not a manifest", "hyper.pods.from_kube: manifest: must be a mapping"),
        ("from_hyperd", {"id": "p", "interfaces": [{"bridge": "b"}], "containers": []}, "hyper.pods.from_hyperd: interfaces: "),
    ],
)
def test_errors_name_the_filter_and_the_field(name: str, value: object, message: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS[name](value)
    assert str(caught.value).startswith(message)


def test_strict_is_passed_on() -> None:
    with pytest.raises(AnsibleFilterError, match="strict=true"):
        FILTERS["from_hyperd"]({"id": "p", "tty": True, "containers": [{"name": "c", "image": "busybox"}]}, strict=True)
