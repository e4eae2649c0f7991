# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The services option of hyper_service and hyper_pod, one text for both. Twin of SERVICE_OPTIONS in
    # plugins/module_utils/_hyper/service/args.py; a unit test keeps the two in step.
    DOCUMENTATION = r"""
options:
  services:
    description:
      - "The pod's services: virtual addresses and ports balanced by haproxy in the pod (C(docs/services.md))."
      - With M(hyper.pods.hyper_service), the services this task is about. With
        O(hyper.pods.hyper_service#module:state=present) each needs O(services[].name), O(services[].address),
        O(services[].port) and its O(services[].backends); with O(hyper.pods.hyper_service#module:state=absent)
        only O(services[].name) counts; with O(hyper.pods.hyper_service#module:purge=true) the list is all of
        them. Left out, it is an empty list.
      - With M(hyper.pods.hyper_pod), all of the pod's services (those not listed are removed). When given, the
        pod gets an haproxy container called C(haproxy) (image O(hyper.pods.hyper_pod#module:service_image))
        unless O(hyper.pods.hyper_pod#module:containers) lists one of that name, and once the pod runs its
        services are applied. The configuration is rendered on the controller, checked with C(haproxy -c), and
        reloaded without dropped connections. A pod that does not run gets them when a task starts it. Left out,
        the pod's services are left alone.
      - Two services may share an address (on different ports), never an address and port.
    type: list
    elements: dict
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
