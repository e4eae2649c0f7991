# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The common doc fragments and their argument specs must say the same thing."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.hyper.pods.plugins.doc_fragments.common import ModuleDocFragment
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import COMMON_ARGUMENT_SPEC, HOST_ARGUMENT_SPEC, with_common_args
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import parse_metadata, render_metadata

# (fragment text, its twin argument spec)
TWINS = {
    "hyper.pods.common": (ModuleDocFragment.DOCUMENTATION, COMMON_ARGUMENT_SPEC),
    "hyper.pods.common.host": (ModuleDocFragment.HOST, HOST_ARGUMENT_SPEC),
}
SETTINGS = [(fragment, name) for fragment, (_doc, spec) in TWINS.items() for name in sorted(spec)]


def doc_options(fragment: str) -> dict[str, dict[str, object]]:
    options: dict[str, dict[str, object]] = yaml.safe_load(TWINS[fragment][0])["options"]
    return options


@pytest.mark.parametrize("fragment", sorted(TWINS))
def test_same_option_names(fragment: str) -> None:
    assert sorted(doc_options(fragment)) == sorted(TWINS[fragment][1])


@pytest.mark.parametrize(("fragment", "name"), SETTINGS)
@pytest.mark.parametrize("key", ["type", "default", "choices", "aliases"])
def test_same_option_settings(fragment: str, name: str, key: str) -> None:
    assert doc_options(fragment)[name].get(key) == TWINS[fragment][1][name].get(key)


def test_fragments_do_not_overlap() -> None:
    assert not set(COMMON_ARGUMENT_SPEC) & set(HOST_ARGUMENT_SPEC)


@pytest.mark.parametrize(
    ("host", "expected"),
    [(False, {"image", *COMMON_ARGUMENT_SPEC}), (True, {"image", *COMMON_ARGUMENT_SPEC, *HOST_ARGUMENT_SPEC})],
)
def test_with_common_args_merges(host: bool, expected: set[str]) -> None:
    merged = with_common_args({"image": {"type": "str"}}, host=host)
    assert set(merged) == expected
    merged["uri"]["default"] = "changed"
    assert COMMON_ARGUMENT_SPEC["uri"]["default"] == "qemu:///system"  # a copy, not the shared dict


@pytest.mark.parametrize(("option", "host"), [("uri", False), ("uri", True), ("root", True), ("accelerator", True)])
def test_with_common_args_refuses_redefinition(option: str, host: bool) -> None:
    with pytest.raises(ValueError, match=option):
        with_common_args({option: {"type": "str"}}, host=host)


def test_host_options_may_be_own_options_without_host() -> None:
    # A module without the host fragment is free to have an option of that name (none does today).
    assert with_common_args({"root": {"type": "str"}})["root"] == {"type": "str"}


@pytest.mark.parametrize("value", [{"pod": "web", "n": [1, 2]}, "text with <markup> & stuff", None, 3])
def test_metadata_round_trip(value: object) -> None:
    xml = render_metadata(value)
    assert xml.startswith("<pod>")
    assert parse_metadata(xml) == value
