# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt errors raised by qemuAgentCommand, mapped once to typed errors."""

from __future__ import annotations

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentCommandError,
    AgentError,
    AgentTimeout,
    AgentUnavailable,
    DomainNotFound,
    DomainNotRunning,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import agent as agent_mod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import map_agent_error

CASES = [
    (86, "Guest agent is not responding: QEMU guest agent is not connected", AgentUnavailable),
    (86, "Guest agent is not responding: Guest agent not available for now", AgentTimeout),
    (86, "Guest agent is not responding: QEMU guest agent is not available due to an error", AgentUnavailable),
    (97, "Guest agent not synchronized: guest agent returned unexpected sync id", AgentTimeout),
    (55, "Requested operation is not valid: domain is not running", DomainNotRunning),
    (42, "Domain not found: no domain with matching uuid", DomainNotFound),
    (74, "argument unsupported: QEMU guest agent is not configured", AgentUnavailable),
    (1, "internal error: cannot parse json {: syntax error", AgentError),
    (55, "Requested operation is not valid: something else", AgentError),
]


@pytest.mark.parametrize(("code", "message", "expected"), CASES)
def test_libvirt_agent_errors_map_to_one_type(code: int, message: str, expected: type) -> None:
    error = map_agent_error(code, message, "hyper-check-0001")
    assert error.__class__ is expected
    assert error.message.startswith("hyper-check-0001: ")
    assert message in error.message


def test_agent_error_reply_relayed_by_libvirt_keeps_the_command_and_desc() -> None:
    message = "internal error: unable to execute QEMU agent command 'guest-file-open': failed to open file '/x' (mode: 'r'): No such file or directory"
    error = map_agent_error(1, message, "vm")
    assert isinstance(error, AgentCommandError)
    assert error.command == "guest-file-open"
    assert error.desc == "failed to open file '/x' (mode: 'r'): No such file or directory"
    assert error.message.startswith("vm: guest agent command guest-file-open failed: ")


def test_unavailable_and_timeout_are_distinct_families() -> None:
    assert not issubclass(AgentTimeout, AgentUnavailable)
    assert issubclass(DomainNotRunning, AgentUnavailable)


def test_error_codes_match_the_libvirt_binding() -> None:
    libvirt = pytest.importorskip("libvirt")
    for name in (
        "VIR_ERR_INTERNAL_ERROR",
        "VIR_ERR_NO_DOMAIN",
        "VIR_ERR_OPERATION_INVALID",
        "VIR_ERR_ARGUMENT_UNSUPPORTED",
        "VIR_ERR_AGENT_UNRESPONSIVE",
        "VIR_ERR_AGENT_UNSYNCED",
    ):
        assert getattr(agent_mod, name) == getattr(libvirt, name), name
