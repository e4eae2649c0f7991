# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks the JSON of ``ansible-inventory --list`` for the pod POD whose label ``evil`` is EVIL.

ansible-inventory prints a string Ansible will not template as ``{"__ansible_unsafe": "..."}``: the
label must come out that way, with its text unchanged.
"""

from __future__ import annotations

import json
import sys
from typing import Any

UNSAFE = "__ansible_unsafe"


def plain(value: Any) -> Any:
    """The value with every unsafe marker taken off."""
    if isinstance(value, dict):
        if set(value) == {UNSAFE}:
            return value[UNSAFE]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def main() -> None:
    path, pod, evil = sys.argv[1:4]
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    hostvars = data["_meta"]["hostvars"]
    hosts = sorted(hostvars)
    expected = [f"{pod}/first", f"{pod}/second"]
    assert hosts == expected, f"hosts {hosts}, expected {expected}"
    group = "pod_" + pod.replace("-", "_")
    assert sorted(data[group]["hosts"]) == expected, data.get(group)
    assert group in data["hyper_pods"]["children"], data["hyper_pods"]
    assert sorted(data["label_suite_inventory"]["hosts"]) == expected, data.get("label_suite_inventory")
    for host in hosts:
        raw = hostvars[host]
        assert raw["hyper_pod"]["labels"]["evil"] == {UNSAFE: evil}, f"label came out as {raw['hyper_pod']['labels']['evil']!r}, not marked unsafe"
        hv = plain(raw)
        assert hv["ansible_connection"] == "hyper.pods.hyper", hv
        assert hv["ansible_host"] == host, hv
        assert hv["ansible_hyper_uri"] == "qemu:///system", hv
        assert hv["hyper_pod"]["name"] == pod, hv
        assert hv["hyper_pod"]["state"] == "running", hv
        assert hv["hyper_pod"]["labels"]["evil"] == evil, f"label came out as {hv['hyper_pod']['labels']['evil']!r}"
        assert hv["hyper_container"]["name"] == host.split("/")[1], hv
        assert hv["composed_label"] == "inventory", hv
        assert "env" not in json.dumps(hv["hyper_container"]), hv
    print(f"inventory ok: {hosts}")


if __name__ == "__main__":
    main()
