# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The common doc fragment and COMMON_ARGUMENT_SPEC must say the same thing."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.hyper.pods.plugins.doc_fragments.common import ModuleDocFragment
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import COMMON_ARGUMENT_SPEC, with_common_args
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import parse_metadata, render_metadata

DOC_OPTIONS = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]


def test_same_option_names() -> None:
    assert sorted(DOC_OPTIONS) == sorted(COMMON_ARGUMENT_SPEC)


@pytest.mark.parametrize("name", sorted(COMMON_ARGUMENT_SPEC))
@pytest.mark.parametrize("key", ["type", "default", "choices", "aliases"])
def test_same_option_settings(name: str, key: str) -> None:
    assert DOC_OPTIONS[name].get(key) == COMMON_ARGUMENT_SPEC[name].get(key)


def test_with_common_args_merges_and_refuses_redefinition() -> None:
    merged = with_common_args({"image": {"type": "str"}})
    assert set(merged) == {"image", *COMMON_ARGUMENT_SPEC}
    merged["uri"]["default"] = "changed"
    assert COMMON_ARGUMENT_SPEC["uri"]["default"] == "qemu:///system"  # a copy, not the shared dict
    with pytest.raises(ValueError, match="uri"):
        with_common_args({"uri": {"type": "str"}})


@pytest.mark.parametrize("value", [{"pod": "web", "n": [1, 2]}, "text with <markup> & stuff", None, 3])
def test_metadata_round_trip(value: object) -> None:
    xml = render_metadata(value)
    assert xml.startswith("<pod>")
    assert parse_metadata(xml) == value
