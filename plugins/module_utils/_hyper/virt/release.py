# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Stop and removal that ride out a busy libvirt: retry a "busy" answer a bounded number of times, then kill.

libvirt answers a destroy or an undefine with "busy" when another job holds the domain
(VIR_ERR_OPERATION_TIMEOUT: "cannot acquire state change lock"), when QEMU did not exit on
SIGTERM in time (VIR_ERR_SYSTEM_ERROR "... Device or resource busy"), or, on a destroy, with
VIR_ERR_OPERATION_FAILED while the domain is being torn down. Like the seed's release-with-retry:

- a destroy is asked gently first (``VIR_DOMAIN_DESTROY_GRACEFUL``: SIGTERM only) up to
  ``ATTEMPTS`` times, waiting ``FIRST_DELAY`` doubled between them; then it kills:
  ``destroyFlags(VIR_DOMAIN_DESTROY_DEFAULT)`` (SIGTERM, then SIGKILL), then the plain
  ``destroy()``; the last error is raised only if the domain still runs after all of them;
- an undefine is retried on "busy" the same way, and the last error raised.

Any other error is raised at once. A domain that is gone or stopped meanwhile is not an error
of a destroy. The libvirt module and the sleep are passed in, so the logic is tested with a
scripted fake.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

# Gentle destroys (or undefines) before giving up, and the first wait between two (doubled each time).
ATTEMPTS = 3
FIRST_DELAY = 0.25
VIR_ERR_OPERATION_FAILED = 9
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_OPERATION_TIMEOUT = 68
BUSY_TEXT = "Device or resource busy"

T = TypeVar("T")


def is_busy(code: Any, message: str, destroying: bool = False) -> bool:
    """Whether a libvirt error means "busy, try again": a timed-out job lock, EBUSY, or (destroying) an operation that failed."""
    if code == VIR_ERR_OPERATION_TIMEOUT or BUSY_TEXT in (message or ""):
        return True
    return destroying and code == VIR_ERR_OPERATION_FAILED


def delays(attempts: int = ATTEMPTS, first: float = FIRST_DELAY) -> list[float]:
    """The waits between ``attempts`` tries: first, twice, four times, ... (one fewer than the tries)."""
    return [first * (2**i) for i in range(max(attempts - 1, 0))]


def _code(err: Any) -> Any:
    return err.get_error_code()


def _message(err: Any) -> str:
    return str(err.get_error_message() or err)


def retry_busy(call: Callable[[], T], libvirt: Any, sleep: Callable[[float], None] = time.sleep, attempts: int = ATTEMPTS, first: float = FIRST_DELAY) -> T:
    """``call()``, tried again after a "busy" libvirt error up to ``attempts`` times in all; the last error raised."""
    for wait in delays(attempts, first):
        try:
            return call()
        except libvirt.libvirtError as err:
            if not is_busy(_code(err), _message(err)):
                raise
        sleep(wait)
    return call()


def _still_running(dom: Any, libvirt: Any) -> bool:
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError as err:
        if _code(err) == VIR_ERR_NO_DOMAIN:
            return False
        raise


def destroy_domain(dom: Any, libvirt: Any, sleep: Callable[[float], None] = time.sleep, attempts: int = ATTEMPTS, first: float = FIRST_DELAY) -> bool:
    """Power ``dom`` off: True when this call stopped it, False when it was not running (or went meanwhile).

    Gentle destroys retried on "busy", then the kills (DEFAULT, then plain); a libvirtError is
    raised when a non-busy error comes while the domain runs, or the domain still runs after the kills.
    """
    waits = delays(attempts, first)
    for attempt in range(attempts):
        try:
            dom.destroyFlags(libvirt.VIR_DOMAIN_DESTROY_GRACEFUL)
            return True
        except libvirt.libvirtError as err:
            if not _still_running(dom, libvirt):
                return False
            if not is_busy(_code(err), _message(err), destroying=True):
                raise
        if attempt < len(waits):
            sleep(waits[attempt])
    last: Any = None
    for kill in (lambda: dom.destroyFlags(libvirt.VIR_DOMAIN_DESTROY_DEFAULT), dom.destroy):
        try:
            kill()
            return True
        except libvirt.libvirtError as err:
            if not _still_running(dom, libvirt):
                return False
            last = err
    raise last
