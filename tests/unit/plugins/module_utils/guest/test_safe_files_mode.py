# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest step's MODE: a mode within 0666 set by the umask at creation (no chmod), any other by chmod; exact either way."""

from __future__ import annotations

import os
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import ContainerFiles, mode_argument
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.local_guest import LocalGuest, container_root, needs_local_guest


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, ""),
        (0o644, "u133"),
        (0o600, "u177"),
        (0o640, "u137"),
        (0o666, "u111"),
        (0o000, "u777"),
        (0o400, "u377"),
        (0o755, "755"),
        (0o700, "700"),
        (0o4755, "4755"),
        (0o1666, "1666"),
        (0o777, "777"),
    ],
)
def test_mode_argument(mode: Optional[int], expected: str) -> None:
    assert mode_argument(mode) == expected


MODES = [0o644, 0o600, 0o640, 0o666, 0o000, 0o400, 0o755, 0o700, 0o4755, 0o2750, 0o777]


@needs_local_guest
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [5, 200 * 1024])  # from stdin, and staged in /run/hyper first
def test_the_file_gets_exactly_the_mode(tmp_path: Any, mode: int, size: int) -> None:
    guest = LocalGuest(str(tmp_path))
    root = container_root(guest)
    os.makedirs(os.path.join(root, "etc"))
    files = ContainerFiles(GuestAgent(guest, name="vm"), "httpd")
    data = os.urandom(size)
    files.write("/etc/f", data, mode)
    st = os.stat(os.path.join(root, "etc/f"))
    assert st.st_mode & 0o7777 == mode
    with open(os.path.join(root, "etc/f"), "rb") as written:
        assert written.read() == data
    assert sorted(os.listdir(os.path.join(root, "etc"))) == ["f"]


@needs_local_guest
def test_a_replaced_file_gets_the_new_mode_and_no_mode_means_0644(tmp_path: Any) -> None:
    guest = LocalGuest(str(tmp_path))
    root = container_root(guest)
    os.makedirs(os.path.join(root, "etc"))
    files = ContainerFiles(GuestAgent(guest, name="vm"), "httpd")
    files.write("/etc/f", b"one", 0o600)
    files.write("/etc/f", b"two", 0o640)
    assert os.stat(os.path.join(root, "etc/f")).st_mode & 0o7777 == 0o640
    previous = os.umask(0o022)  # the guest agent's own umask, which the step inherits
    try:
        files.write("/etc/g", b"three")
    finally:
        os.umask(previous)
    assert os.stat(os.path.join(root, "etc/g")).st_mode & 0o7777 == 0o644
