# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module's ``attributes`` say what the module and its action plugin do (a sanity-style check).

Read from the source, not from what a module prints: ``action`` is full exactly when
plugins/action/<module>.py exists; an action plugin declares async and check mode as the module
documents them and passes ``wrap_async`` to every module call; ``check_mode`` matches the module's
``supports_check_mode``; ``diff_mode`` is supported only by modules that read ``module._diff``;
the host options (fragment ``hyper.pods.common.host``) are on exactly the modules whose argument
spec has them.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[3]
MODULES = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
ACTIONS = {p.stem for p in (COLLECTION / "plugins" / "action").glob("*.py") if not p.name.startswith("_")}
REQUIRED = ("action", "async", "check_mode", "diff_mode", "idempotent", "platform")
SUPPORT = ("full", "partial", "none", "N/A")


def module_tree(name: str) -> ast.Module:
    return ast.parse((COLLECTION / "plugins" / "modules" / f"{name}.py").read_text(encoding="utf-8"))


def documentation(name: str) -> dict[str, Any]:
    for node in module_tree(name).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DOCUMENTATION" for t in node.targets):
            doc: dict[str, Any] = yaml.safe_load(ast.literal_eval(node.value))
            return doc
    raise AssertionError(f"{name} has no DOCUMENTATION")


def support(name: str, attribute: str) -> str:
    return str(documentation(name)["attributes"][attribute]["support"])


def ansible_module_keywords(name: str) -> dict[str, Any]:
    """The keywords of the module's one ``AnsibleModule(...)`` call (literals only)."""
    calls = [n for n in ast.walk(module_tree(name)) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "AnsibleModule"]
    assert len(calls) == 1, f"{name}: expected one AnsibleModule call, found {len(calls)}"
    return {k.arg: ast.literal_eval(k.value) for k in calls[0].keywords if k.arg and isinstance(k.value, ast.Constant)}


def action_class(name: str) -> Any:
    return importlib.import_module(f"ansible_collections.hyper.pods.plugins.action.{name}").ActionModule


def test_there_are_modules_to_check() -> None:
    assert {"hyper_pod", "hyper_service"} <= set(MODULES) and set(MODULES) >= ACTIONS


@pytest.mark.parametrize("name", MODULES)
def test_every_attribute_is_there_with_a_support_level_and_a_reason(name: str) -> None:
    attributes = documentation(name).get("attributes") or {}
    missing = [a for a in REQUIRED if a not in attributes]
    assert not missing, f"{name}: attributes {missing} are missing"
    for attribute, value in attributes.items():
        assert value.get("support") in SUPPORT, f"{name}: attributes.{attribute}.support is {value.get('support')!r}"
        assert value.get("description"), f"{name}: attributes.{attribute} must say why (description)"


@pytest.mark.parametrize("name", MODULES)
def test_action_attribute_matches_the_action_plugin(name: str) -> None:
    assert (support(name, "action") == "full") == (name in ACTIONS), f"{name}: attributes.action.support is {support(name, 'action')!r}"
    assert support(name, "action") in ("full", "none")


@pytest.mark.parametrize("name", MODULES)
def test_async_attribute_matches_what_runs_the_module(name: str) -> None:
    documented = support(name, "async") != "none"
    if name in ACTIONS:
        assert action_class(name)._supports_async is documented, f"{name}: the action plugin's _supports_async disagrees with attributes.async"
    else:
        # ansible-core's normal action runs the module, and it supports async.
        assert documented, f"{name}: runs through the normal action, which supports async; say why it cannot"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_plugins_carry_async_to_every_module_call(name: str) -> None:
    tree = ast.parse((COLLECTION / "plugins" / "action" / f"{name}.py").read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "_execute_module"]
    assert calls, f"{name}: the action plugin never runs its module"
    for call in calls:
        assert "wrap_async" in {k.arg for k in call.keywords}, f"{name}: _execute_module at line {call.lineno} does not say whether it wraps async"
    wrapped = [c for c in calls if not any(k.arg == "wrap_async" and isinstance(k.value, ast.Constant) and k.value.value is False for k in c.keywords)]
    assert wrapped, f"{name}: no module call carries the task's async"


@pytest.mark.parametrize("name", MODULES)
def test_check_mode_attribute_matches_supports_check_mode(name: str) -> None:
    supports = ansible_module_keywords(name).get("supports_check_mode", False)
    assert (support(name, "check_mode") != "none") == supports, f"{name}: attributes.check_mode.support disagrees with supports_check_mode={supports}"
    if name in ACTIONS:
        assert action_class(name)._supports_check_mode is True


@pytest.mark.parametrize("name", MODULES)
def test_diff_mode_attribute_matches_the_use_of_module_diff(name: str) -> None:
    reads_diff = any(isinstance(n, ast.Attribute) and n.attr == "_diff" for n in ast.walk(module_tree(name)))
    assert (support(name, "diff_mode") in ("full", "partial")) == reads_diff, f"{name}: attributes.diff_mode disagrees with the module's use of module._diff"


@pytest.mark.parametrize("name", MODULES)
def test_host_options_are_documented_exactly_where_they_are_taken(name: str) -> None:
    fragments = documentation(name).get("extends_documentation_fragment") or []
    assert "hyper.pods.common" in fragments
    spec = importlib.import_module(f"ansible_collections.hyper.pods.plugins.modules.{name}").ARGUMENT_SPEC
    assert ("hyper.pods.common.host" in fragments) == ("accelerator" in spec)
    # The image modules take root alone (fragment hyper.pods.images.cache): they never boot a VM.
    assert ("root" in spec) == ("hyper.pods.common.host" in fragments or "hyper.pods.images.cache" in fragments)
    assert not ("hyper.pods.common.host" in fragments and "hyper.pods.images.cache" in fragments)
