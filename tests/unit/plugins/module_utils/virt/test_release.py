# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virt/release.py against a scripted fake libvirt: busy answers retried with back-off, then the kills, then the error."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional, Union

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.release import (
    VIR_ERR_NO_DOMAIN,
    VIR_ERR_OPERATION_FAILED,
    VIR_ERR_OPERATION_TIMEOUT,
    VIR_ERR_SYSTEM_ERROR,
    delays,
    destroy_domain,
    is_busy,
    retry_busy,
)


class FakeLibvirtError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return self.message


LIBVIRT = SimpleNamespace(libvirtError=FakeLibvirtError, VIR_DOMAIN_DESTROY_DEFAULT=0, VIR_DOMAIN_DESTROY_GRACEFUL=1)
LOCK = (VIR_ERR_OPERATION_TIMEOUT, "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainGetState)")
EBUSY = (VIR_ERR_SYSTEM_ERROR, "Failed to terminate process 4242 with SIGTERM: Device or resource busy")
TEARDOWN = (VIR_ERR_OPERATION_FAILED, "operation failed: domain is being torn down")
DENIED = (38, "Permission denied")
Answer = Optional[tuple[int, str]]  # None: the call succeeds (and the VM stops)


class FakeDomain:
    """Answers each destroy call from a script; ``isActive`` says whether the VM still runs (or raises when gone)."""

    def __init__(self, script: list[Answer], running: bool = True, gone_after: Optional[int] = None) -> None:
        self.script = list(script)
        self.running = running
        self.gone_after = gone_after
        self.calls: list[str] = []

    def _answer(self, what: str) -> None:
        self.calls.append(what)
        if self.gone_after is not None and len(self.calls) >= self.gone_after:
            self.running = False
        answer = self.script.pop(0) if self.script else None
        if answer is not None:
            raise FakeLibvirtError(*answer)
        self.running = False

    def destroyFlags(self, flags: int) -> None:
        self._answer("graceful" if flags == 1 else "default")

    def destroy(self) -> None:
        self._answer("plain")

    def isActive(self) -> int:
        return 1 if self.running else 0


@pytest.mark.parametrize(
    ("code", "message", "destroying", "busy"),
    [
        (*LOCK, False, True),
        (*EBUSY, False, True),
        (*TEARDOWN, True, True),
        (*TEARDOWN, False, False),  # an undefine that "failed" is not busy
        (*DENIED, True, False),
        (55, "Requested operation is not valid: domain is not running", True, False),
    ],
)
def test_what_counts_as_busy(code: int, message: str, destroying: bool, busy: bool) -> None:
    assert is_busy(code, message, destroying) is busy


def test_delays_double() -> None:
    assert delays(4, 0.25) == [0.25, 0.5, 1.0]
    assert delays(1, 0.25) == []


@pytest.mark.parametrize(
    ("script", "calls", "result", "slept"),
    [
        pytest.param([None], ["graceful"], True, [], id="stops-at-once"),
        pytest.param([LOCK, None], ["graceful", "graceful"], True, [0.25], id="busy-once"),
        pytest.param([EBUSY, TEARDOWN, None], ["graceful"] * 3, True, [0.25, 0.5], id="busy-twice"),
        pytest.param([LOCK, LOCK, LOCK, None], ["graceful"] * 3 + ["default"], True, [0.25, 0.5], id="killed-with-default"),
        pytest.param([EBUSY] * 4 + [None], ["graceful"] * 3 + ["default", "plain"], True, [0.25, 0.5], id="killed-plain"),
    ],
)
def test_destroy_retries_busy_then_kills(script: list[Answer], calls: list[str], result: bool, slept: list[float]) -> None:
    dom = FakeDomain(script)
    sleeps: list[float] = []
    assert destroy_domain(dom, LIBVIRT, sleeps.append) is result
    assert dom.calls == calls
    assert sleeps == slept
    assert not dom.running


def test_destroy_gives_up_with_the_last_error_while_the_vm_runs() -> None:
    dom = FakeDomain([LOCK, LOCK, LOCK, EBUSY, EBUSY])
    sleeps: list[float] = []
    with pytest.raises(FakeLibvirtError, match="Device or resource busy"):
        destroy_domain(dom, LIBVIRT, sleeps.append)
    assert dom.calls == ["graceful"] * 3 + ["default", "plain"]
    assert sum(sleeps) == pytest.approx(0.75)  # bounded: the back-off of the gentle tries only


def test_a_non_busy_error_is_raised_at_once() -> None:
    dom = FakeDomain([DENIED])
    sleeps: list[float] = []
    with pytest.raises(FakeLibvirtError, match="Permission denied"):
        destroy_domain(dom, LIBVIRT, sleeps.append)
    assert dom.calls == ["graceful"] and sleeps == []


@pytest.mark.parametrize("answer", [LOCK, DENIED, (55, "domain is not running")])
def test_a_vm_that_stopped_meanwhile_is_no_error(answer: tuple[int, str]) -> None:
    dom = FakeDomain([answer], gone_after=1)
    assert destroy_domain(dom, LIBVIRT, lambda _s: None) is False
    assert dom.calls == ["graceful"]


def test_a_domain_that_went_meanwhile_is_no_error() -> None:
    class Gone(FakeDomain):
        def isActive(self) -> int:
            raise FakeLibvirtError(VIR_ERR_NO_DOMAIN, "Domain not found")

    assert destroy_domain(Gone([LOCK]), LIBVIRT, lambda _s: None) is False


@pytest.mark.parametrize(
    ("script", "calls", "slept", "outcome"),
    [
        pytest.param([None], 1, [], "ok", id="at-once"),
        pytest.param([LOCK, EBUSY, None], 3, [0.25, 0.5], "ok", id="busy-twice"),
        pytest.param([LOCK, LOCK, LOCK], 3, [0.25, 0.5], "busy", id="gives-up"),
        pytest.param([TEARDOWN], 1, [], "failed", id="operation-failed-is-not-busy-here"),
        pytest.param([DENIED, None], 1, [], "failed", id="other-error-at-once"),
    ],
)
def test_retry_busy(script: list[Answer], calls: int, slept: list[float], outcome: str) -> None:
    made: list[int] = []

    def call() -> str:
        made.append(1)
        answer = script.pop(0)
        if answer is not None:
            raise FakeLibvirtError(*answer)
        return "ok"

    sleeps: list[float] = []
    result: Union[str, FakeLibvirtError]
    try:
        result = retry_busy(call, LIBVIRT, sleeps.append)
    except FakeLibvirtError as err:
        result = err
    assert len(made) == calls
    assert sleeps == slept
    if outcome == "ok":
        assert result == "ok"
    elif outcome == "busy":
        assert isinstance(result, FakeLibvirtError) and result.code == VIR_ERR_OPERATION_TIMEOUT
    else:
        assert isinstance(result, FakeLibvirtError)


def test_the_client_maps_the_final_error(monkeypatch: Any) -> None:
    # The client's destroy goes through destroy_domain and maps what it raises once (LibvirtFailure).
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import LibvirtFailure  # pylint: disable=import-outside-toplevel
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt import client as client_mod  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(client_mod, "import_libvirt", lambda: (LIBVIRT, None))
    client = client_mod.LibvirtClient(object(), "test:///default")
    client.sleep = lambda _s: None
    dom = FakeDomainNamed([EBUSY] * 5)
    with pytest.raises(LibvirtFailure, match=r"destroying domain hyper-0000000c: .*Device or resource busy"):
        client.destroy(dom)
    assert client.destroy(FakeDomainNamed([LOCK, None])) is True


class FakeDomainNamed(FakeDomain):
    def name(self) -> str:
        return "hyper-0000000c"
