# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

# The suboptions of one service, shared by hyper_service's and hyper_pod's ``services``. Twin of
# SERVICE_OPTIONS in plugins/module_utils/_hyper/service/args.py; a unit test keeps the two in step.
_SERVICE_SUBOPTIONS = r"""
    suboptions:
      name:
        description:
          - Name of the service, unique in the pod. Lower-case letters, digits and V(-), starting with a
            letter or digit, at most 63 characters. It names the haproxy C(listen) section.
        type: str
        required: true
      address:
        description:
          - The service address, IPv4 or IPv6, added to the pod's C(lo) unless it is a loopback address.
        type: str
      port:
        description:
          - The service port, 1 to 65535.
        type: int
      protocol:
        description:
          - Only V(tcp). haproxy balances TCP (and HTTP over it), so any other value, V(udp) included, is an error.
        type: str
        default: tcp
      balance:
        description:
          - How connections are spread over the backends.
        type: str
        choices: [roundrobin, leastconn, source]
        default: roundrobin
      check:
        description:
          - Health checks of the backends (TCP connect). Backends that fail them get no connections.
        type: dict
        suboptions:
          enabled:
            description: Check the backends.
            type: bool
            default: false
          interval:
            description: Milliseconds between two checks of a backend, 100 to 3600000.
            type: int
            default: 2000
      backends:
        description:
          - The servers behind the service. A service without backends refuses nothing but serves nothing.
        type: list
        elements: dict
        default: []
        suboptions:
          address:
            description: IPv4 or IPv6 address of the backend (V(127.0.0.1) for a container of the same pod).
            type: str
            required: true
          port:
            description: Port of the backend, 1 to 65535.
            type: int
            required: true
          weight:
            description: Relative share of the connections, 0 to 256.
            type: int
            default: 1
          enabled:
            description: V(false) keeps the backend in the configuration but sends it nothing.
            type: bool
            default: true
"""


class ModuleDocFragment:
    # hyper_service: the services the task is about.
    DOCUMENTATION = (
        r"""
options:
  services:
    description:
      - The services this task is about.
      - With O(state=present) each needs O(services[].name), O(services[].address), O(services[].port)
        and its O(services[].backends); with O(state=absent) only O(services[].name) counts.
      - Two services may share an address (on different ports), never an address and port.
    type: list
    elements: dict
    default: []"""
        + _SERVICE_SUBOPTIONS
    )

    # hyper_pod: all of the pod's services.
    POD = (
        r"""
options:
  services:
    description:
      - The pod's services, all of them (those not listed are removed), as for M(hyper.pods.hyper_service)
        with O(hyper.pods.hyper_service#module:purge=true); see there and C(docs/services.md).
      - When given, the pod gets an haproxy container called C(haproxy) (image O(service_image)) unless
        O(containers) lists one of that name, and once the pod runs its services are applied. The
        configuration is rendered on the controller, checked with C(haproxy -c), and reloaded without
        dropped connections. A pod that does not run gets them when a task starts it.
      - Leave it out to leave the pod's services alone.
    type: list
    elements: dict"""
        + _SERVICE_SUBOPTIONS
    )
