# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filters' documentation against ansible-test's own documentation schema.

``ansible-test sanity --test validate-modules`` skips filter plugins (several filters share one
file), so nothing else checks their YAML documentation; this runs the schema validate-modules
applies to other plugins, with plugin_type ``filter`` (semantic markup included).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import ansible_test
import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(ansible_test.__file__), "_util", "controller", "sanity", "validate-modules"))
from validate_modules.schema import doc_schema, return_schema

FILTER_DIR = Path(__file__).resolve().parents[4] / "plugins" / "filter"
NAMES = ("from_kube", "from_hyperd")


def load(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text()))


@pytest.mark.parametrize("name", NAMES)
def test_documentation_passes_the_schema(name: str) -> None:
    data = load(name)
    doc_schema(name, for_collection=True, plugin_type="filter")(data["DOCUMENTATION"])
    return_schema(for_collection=True, plugin_type="filter")(data["RETURN"])
    assert yaml.safe_load(data["EXAMPLES"])


@pytest.mark.parametrize(
    "break_it",
    [
        lambda doc: doc.update(bogus=1),
        lambda doc: doc["description"].append("broken markup O(name"),
        lambda doc: doc["options"]["strict"].update(type="nonsense"),
    ],
)
def test_the_schema_catches_mistakes(break_it: Any) -> None:
    doc = load("from_kube")["DOCUMENTATION"]
    break_it(doc)
    with pytest.raises(Exception, match="@ data"):
        doc_schema("from_kube", for_collection=True, plugin_type="filter")(doc)
