# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Typed errors of the hyper library; turned into ``fail_json`` once, in ``ansible_adapter``."""

from __future__ import annotations

from typing import Any, Optional


class HyperError(Exception):
    """Base error: ``message`` is what the user reads, ``details`` become extra result fields."""

    def __init__(self, message: str, details: Optional[dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class SpecError(HyperError):
    """An option value is not acceptable; the message names the option and the value."""

    def __init__(self, option: str, value: object, reason: str) -> None:
        super().__init__(f"option {option}={value!r}: {reason}", {"option": option})
        self.option = option
        self.value = value
        self.reason = reason


class AgentError(HyperError):
    """Anything that went wrong talking to qemu-ga."""


class AgentTimeout(AgentError):
    """The guest agent did not answer in time (or a guest command outlived its timeout)."""


class AgentUnavailable(AgentError):
    """No agent to talk to: channel not connected, agent not configured, or domain not running."""


class DomainNotRunning(AgentUnavailable):
    """The domain stopped (or never ran) while we needed its agent."""


class AgentCommandError(AgentError):
    """qemu-ga answered with an error object (``class`` and ``desc``)."""

    def __init__(self, command: str, error_class: str, desc: str, where: str = "") -> None:
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}guest agent command {command} failed: {desc} ({error_class})", {"agent_error_class": error_class})
        self.command = command
        self.error_class = error_class
        self.desc = desc


class DomainNotFound(HyperError):
    """No libvirt domain with that name or UUID."""


class LibvirtFailure(HyperError):
    """libvirt refused or failed an operation; the message carries libvirt's own text."""


class ImageError(HyperError):
    """A guest image (kernel, initrd, manifest) is missing or unusable."""


class BootError(HyperError):
    """The guest did not come up; ``console_tail`` holds the last lines of its serial console."""

    def __init__(self, message: str, console_tail: list[str]) -> None:
        super().__init__(message, {"console_tail": console_tail})
        self.console_tail = console_tail


class ContainerError(HyperError):
    """A container of a pod failed in the guest (start, stop, exited early); ``log_tail`` holds its last log lines."""

    def __init__(self, container: str, reason: str, log_tail: Optional[list[str]] = None, details: Optional[dict[str, Any]] = None) -> None:
        tail = list(log_tail or [])
        super().__init__(f"container {container}: {reason}", {**(details or {}), "container": container, "log_tail": tail})
        self.container = container
        self.reason = reason
        self.log_tail = tail
