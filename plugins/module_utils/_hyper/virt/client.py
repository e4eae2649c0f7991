# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""LibvirtClient: the one libvirt client (connect, lookup, create, define, start, destroy, metadata)."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager, suppress
from typing import Any, Callable, Iterator, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import DomainNotFound, LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.release import destroy_domain, retry_busy

DEFAULT_URI = "qemu:///system"
METADATA_NS = "https://hyper.pods/xmlns/pod/1"
METADATA_KEY = "hyper"
METADATA_ELEMENT = "pod"
LIBVIRT_MISSING = "the Python libvirt binding is missing: install libvirt-python (pip) or python3-libvirt (apt) on the hyper host"

# Domain handles are libvirt.virDomain objects; the binding has no type stubs.
Domain = Any

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_STATES = {0: "nostate", 1: "running", 2: "blocked", 3: "paused", 4: "shutdown", 5: "shutoff", 6: "crashed", 7: "pmsuspended"}
_VIR_ERR_NO_DOMAIN = 42
_VIR_ERR_NO_DOMAIN_METADATA = 80


def import_libvirt() -> tuple[Any, Any]:
    """Return the ``libvirt`` and ``libvirt_qemu`` modules, or fail with what to install."""
    try:
        import libvirt  # pylint: disable=import-outside-toplevel
        import libvirt_qemu  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise LibvirtFailure(f"{LIBVIRT_MISSING} ({err})") from None
    return libvirt, libvirt_qemu


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    # Without a handler the binding prints every error to stderr; we report them ourselves.
    return None


class LibvirtClient:
    """A libvirt connection; every libvirt call of the collection goes through here."""

    def __init__(self, conn: Any, uri: str) -> None:
        self.conn = conn
        self.uri = uri
        self._libvirt, _qemu = import_libvirt()
        self.sleep: Callable[[float], None] = time.sleep  # between the retries of a busy libvirt

    @classmethod
    def open(cls, uri: str = DEFAULT_URI) -> LibvirtClient:
        libvirt, _qemu = import_libvirt()
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as err:
            raise LibvirtFailure(f"cannot connect to libvirt at {uri}: {err.get_error_message() or err} (is libvirtd running?)") from None
        return cls(conn, uri)

    def close(self) -> None:
        with suppress(self._libvirt.libvirtError):
            self.conn.close()

    def __enter__(self) -> LibvirtClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Map libvirt errors once: missing domains to DomainNotFound, the rest to LibvirtFailure."""
        try:
            yield
        except self._libvirt.libvirtError as err:
            raise map_libvirt_error(err.get_error_code(), err.get_error_message() or str(err), what) from None

    # -- domains -------------------------------------------------------------------------------

    def lookup(self, name_or_uuid: str) -> Domain:
        with self._errors(f"domain {name_or_uuid}"):
            if _UUID.match(name_or_uuid):
                try:
                    return self.conn.lookupByUUIDString(name_or_uuid)
                except self._libvirt.libvirtError as err:
                    if err.get_error_code() != _VIR_ERR_NO_DOMAIN:
                        raise
            return self.conn.lookupByName(name_or_uuid)

    def create_transient(self, xml: str) -> Domain:
        """Create and start a domain that vanishes when it stops."""
        with self._errors("creating a transient domain"):
            return self.conn.createXML(xml, 0)

    def define(self, xml: str) -> Domain:
        with self._errors("defining a domain"):
            return self.conn.defineXML(xml)

    def start(self, dom: Domain) -> None:
        with self._errors(f"starting domain {dom.name()}"):
            dom.create()

    def destroy(self, dom: Domain) -> bool:
        """Power the domain off at once; False when it was not running (not an error)."""
        try:
            with self._errors(f"destroying domain {dom.name()}"):
                # A "busy" libvirt is asked again, then the VM killed (virt/release.py).
                return destroy_domain(dom, self._libvirt, self.sleep)
        except DomainNotFound:
            return False
        except LibvirtFailure:
            if self.is_active(dom):
                raise
            return False

    def undefine(self, dom: Domain, keep_nvram: bool = False) -> None:
        """Remove the persistent definition along with its managed save and snapshot metadata."""
        lv = self._libvirt
        flags = lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | lv.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        flags |= lv.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM if keep_nvram else lv.VIR_DOMAIN_UNDEFINE_NVRAM
        with self._errors(f"undefining domain {dom.name()}"):
            retry_busy(lambda: dom.undefineFlags(flags), self._libvirt, self.sleep)

    def suspend(self, dom: Domain) -> None:
        """Pause the running domain's vCPUs (a warm pool's VM: its RAM stays held)."""
        with self._errors(f"pausing domain {dom.name()}"):
            dom.suspend()

    def resume(self, dom: Domain) -> None:
        with self._errors(f"resuming domain {dom.name()}"):
            dom.resume()

    def set_title(self, dom: Domain, title: str, persistent: bool = True) -> None:
        """Set the domain's title in the live and (``persistent``, for a persistent domain) the saved definition."""
        lv = self._libvirt
        with self._errors(f"setting the title of domain {dom.name()}"):
            flags = (lv.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0) | (lv.VIR_DOMAIN_AFFECT_CONFIG if persistent and dom.isPersistent() else 0)
            dom.setMetadata(lv.VIR_DOMAIN_METADATA_TITLE, title, None, None, flags)

    def state(self, dom: Domain) -> str:
        """One of nostate, running, blocked, paused, shutdown, shutoff, crashed, pmsuspended."""
        with self._errors(f"state of domain {dom.name()}"):
            code, _reason = dom.state()
        return _STATES.get(code, f"unknown({code})")

    def is_active(self, dom: Domain) -> bool:
        try:
            with self._errors("domain state"):
                return bool(dom.isActive())
        except DomainNotFound:
            return False

    def list_domains(self, prefix: str = "") -> list[Domain]:
        """All domains (running or defined) whose name starts with ``prefix``, sorted by name."""
        with self._errors("listing domains"):
            domains = self.conn.listAllDomains(0)
        return sorted((d for d in domains if d.name().startswith(prefix)), key=lambda d: str(d.name()))

    def xml_desc(self, dom: Domain) -> str:
        """The domain's XML as it runs now (socket paths and other values libvirt filled in)."""
        with self._errors(f"reading the XML of domain {dom.name()}"):
            return str(dom.XMLDesc(0))

    # -- devices of a running domain (virt/hotplug.py) ----------------------------------------

    def _device_flags(self, dom: Domain, persistent: bool) -> int:
        lv = self._libvirt
        return int(lv.VIR_DOMAIN_AFFECT_LIVE) | (int(lv.VIR_DOMAIN_AFFECT_CONFIG) if persistent and dom.isPersistent() else 0)

    def attach_device(self, dom: Domain, xml: str, persistent: bool = True) -> None:
        """Attach a device to the running domain; ``persistent`` also adds it to the saved definition."""
        with self._errors(f"attaching a device to domain {dom.name()}"):
            dom.attachDeviceFlags(xml, self._device_flags(dom, persistent))

    def detach_device(self, dom: Domain, xml: str, persistent: bool = True) -> None:
        """Ask for a device's removal; for PCI devices the guest completes it later (virt/hotplug.py waits)."""
        with self._errors(f"detaching a device from domain {dom.name()}"):
            dom.detachDeviceFlags(xml, self._device_flags(dom, persistent))

    # -- networks ------------------------------------------------------------------------------

    def network_leases(self, network: str, mac: str) -> list[Any]:
        """The DHCP leases libvirt's network ``network`` holds for ``mac`` (host-side truth, as dnsmasq gave them).

        Each is libvirt's dict (``ipaddr``, ``prefix``, ``type``, ``mac``, ``expirytime``, ...); the
        caller checks the values (network/leases.py).
        """
        with self._errors(f"reading the DHCP leases of network {network}"):
            leases = self.conn.networkLookupByName(network).DHCPLeases(mac, 0)
        return list(leases or [])

    # -- metadata: the pod's stored spec, JSON in <metadata><hyper:pod xmlns:hyper=...> --------

    def get_metadata(self, dom: Domain) -> Optional[Any]:
        """The JSON value stored under our namespace, or None when there is none."""
        lv = self._libvirt
        try:
            xml = dom.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
        except lv.libvirtError as err:
            if err.get_error_code() == _VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise map_libvirt_error(err.get_error_code(), err.get_error_message() or str(err), f"metadata of domain {dom.name()}") from None
        return parse_metadata(xml)

    def set_metadata(self, dom: Domain, value: Any) -> None:
        """Store ``value`` as JSON in the live and, for a persistent domain, the saved definition."""
        lv = self._libvirt
        with self._errors(f"setting metadata of domain {dom.name()}"):
            flags = (lv.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0) | (lv.VIR_DOMAIN_AFFECT_CONFIG if dom.isPersistent() else 0)
            dom.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, render_metadata(value), METADATA_KEY, METADATA_NS, flags)


def map_libvirt_error(code: Optional[int], message: str, what: str) -> DomainNotFound | LibvirtFailure:
    if code == _VIR_ERR_NO_DOMAIN:
        return DomainNotFound(f"{what}: {message}")
    return LibvirtFailure(f"{what}: {message}")


def render_metadata(value: Any) -> str:
    """The metadata element for ``value``: ``<pod>JSON</pod>`` (libvirt adds our namespace)."""
    element = ET.Element(METADATA_ELEMENT)
    element.text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return ET.tostring(element, encoding="unicode")


def parse_metadata(xml: str) -> Any:
    try:
        element = ET.fromstring(xml)
        return json.loads(element.text or "null")
    except (ET.ParseError, ValueError) as err:
        raise LibvirtFailure(f"stored hyper metadata is not readable ({err}): {xml[:200]!r}") from None
