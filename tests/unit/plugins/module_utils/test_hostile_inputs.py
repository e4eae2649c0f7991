# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad user input of issue 13 (item 11): a clear error naming the option, never a traceback or a hang."""

from __future__ import annotations

import os
import signal
from typing import Any, Iterator

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import read_source
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.volumes import parse_size

WEB = {"name": "web", "image": "docker://busybox:1.36"}


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail (instead of hanging the test run) when the code under test blocks for 5 s."""

    def expired(_signum: int, _frame: Any) -> None:
        raise TimeoutError("blocked for 5 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(5)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("value", ["9" * 5000, "9" * 21 + "M", 10**5000], ids=["5000 digits", "21 digits", "an int of 5001 digits"])
def test_a_size_of_thousands_of_digits_is_a_spec_error(value: Any) -> None:
    with pytest.raises(SpecError, match=r"volumes\[data\]\.size"):
        parse_size(value, "volumes[data].size")


def test_a_fifo_as_src_is_refused_at_once(tmp_path: Any, no_hang: None) -> None:
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    params = {"name": "p", "containers": [{**WEB, "files": [{"path": "/etc/x", "src": fifo}]}]}
    spec = normalise_pod(params)[0]
    with pytest.raises(SpecError, match=r"containers\[web\]\.files\[0\]\.src.*not a regular file"):
        read_source(spec.containers[0].files[0], "containers[web].files[0]")


def test_a_directory_as_src_is_refused(tmp_path: Any) -> None:
    spec = normalise_pod({"name": "p", "containers": [{**WEB, "files": [{"path": "/etc/x", "src": str(tmp_path)}]}]})[0]
    with pytest.raises(SpecError, match=r"src"):
        read_source(spec.containers[0].files[0], "containers[web].files[0]")


@pytest.mark.parametrize(("read_only", "refused"), [(False, True), (None, True), (True, False)])
def test_the_host_root_is_never_shared_read_write(read_only: Any, refused: bool) -> None:
    mount: dict[str, Any] = {"name": "hostroot", "path": "/host"}
    if read_only is not None:
        mount["read_only"] = read_only
    params = {"name": "p", "volumes": [{"name": "hostroot", "host_path": "/"}], "containers": [{**WEB, "volumes": [mount]}]}
    if refused:
        with pytest.raises(SpecError, match=r"containers\[web\]\.volumes\[0\]\.read_only.*whole file system \(host_path: /\)"):
            normalise_pod(params)
    else:
        assert normalise_pod(params)[0].volumes[0].host_path == "/"


def test_a_bad_guest_image_names_the_option() -> None:
    with pytest.raises(SpecError) as caught:
        normalise_pod({"name": "p", "guest_image": "../etc", "containers": [WEB]})
    assert caught.value.option == "guest_image"
