# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""env values out of the libvirt metadata (pod/secrets.py): keyed digests there, clear values root-only on the host."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod import secrets as s

KEY = b"k" * 32


def spec(env: dict[str, str], name: str = "p") -> dict[str, Any]:
    return {"name": name, "containers": [{"name": "web", "env": env}, {"name": "db"}]}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("p", "web", "X", "v"), ("p", "web", "X", "v"), True),
        (("p", "web", "X", "v"), ("p", "web", "X", "w"), False),
        (("p", "web", "X", "v"), ("q", "web", "X", "v"), False),  # bound to the pod
        (("p", "web", "X", "v"), ("p", "db", "X", "v"), False),  # the container
        (("p", "web", "X", "v"), ("p", "web", "Y", "v"), False),  # the variable
        (("p", "we", "bX", "v"), ("p", "web", "X", "v"), False),  # no ambiguity in the joined message
    ],
)
def test_seal(a: tuple[str, str, str, str], b: tuple[str, str, str, str], same: bool) -> None:
    assert (s.seal(KEY, *a) == s.seal(KEY, *b)) is same
    assert s.is_sealed(s.seal(KEY, *a)) and s.seal(KEY, *a) != s.seal(b"o" * 32, *a)
    assert s.seal(KEY, "p", "web", "X", s.seal(KEY, *a)) == s.seal(KEY, *a)  # sealed stays sealed


def test_seal_and_unseal_spec() -> None:
    clear = spec({"TOKEN": "hunter2", "MODE": "quiet"})
    sealed = s.seal_spec(clear, KEY)
    assert "hunter2" not in json.dumps(sealed) and "quiet" not in json.dumps(sealed)
    assert s.seal_spec(sealed, KEY) == sealed
    assert s.clear_env(clear) == {"web": {"TOKEN": "hunter2", "MODE": "quiet"}} and s.clear_env(sealed) == {}
    # The clear values come back from any source whose seal matches; a wrong one is skipped.
    assert s.unseal_spec(sealed, KEY, {"web": {"TOKEN": "wrong"}}, s.clear_env(clear)) == clear
    with pytest.raises(HyperError, match="env TOKEN") as err:
        s.unseal_spec(sealed, KEY, {"web": {"MODE": "quiet"}})
    assert "hunter2" not in str(err.value)


def test_old_pods_compare_equal_once_sealed() -> None:
    """A pod stored with clear values (before this) and the same task: the sealed forms are equal, so no change."""
    old_metadata = spec({"TOKEN": "hunter2"})
    task = spec({"TOKEN": "hunter2"})
    assert s.seal_spec(old_metadata, KEY) == s.seal_spec(task, KEY)
    assert s.seal_spec(old_metadata, KEY) != s.seal_spec(spec({"TOKEN": "other"}), KEY)


def test_host_key(tmp_path: Path) -> None:
    root = str(tmp_path)
    with pytest.raises(HyperError, match="missing"):
        s.host_key(root, create=False)
    throwaway = s.sealing_key(root, check_mode=True)
    assert len(throwaway) == 32 and not (tmp_path / s.KEY_FILE).exists()  # check mode makes nothing
    key = s.host_key(root)
    assert len(key) == 32 and s.host_key(root) == key and s.sealing_key(root, check_mode=True) == key
    assert stat.S_IMODE(os.stat(tmp_path / s.KEY_FILE).st_mode) == 0o600
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]
    (tmp_path / s.KEY_FILE).write_bytes(b"short")
    with pytest.raises(HyperError, match="not 32 bytes"):
        s.host_key(root)


def test_env_file(tmp_path: Path) -> None:
    root, vm = str(tmp_path), "hyper-00000001"
    assert s.load_env(root, vm) == {}
    s.save_env(root, vm, {"web": {"TOKEN": "hunter2"}})
    assert s.load_env(root, vm) == {"web": {"TOKEN": "hunter2"}}
    assert stat.S_IMODE(os.stat(s.env_path(root, vm)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(s.env_path(root, vm))).st_mode) == 0o700
    for bad in ("[]", '{"web": {"A": 1}}', "{", '{"web": "x"}'):
        Path(s.env_path(root, vm)).write_text(bad)
        with pytest.raises(HyperError, match="does not hold"):
            s.load_env(root, vm)
