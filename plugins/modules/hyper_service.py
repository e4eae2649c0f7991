#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_service
short_description: Service addresses of a hyper pod, balanced by haproxy inside the pod
version_added: 0.1.0
description:
  - Declares the services of a running hyper pod. A service is a virtual IP address and a TCP port
    (V(10.96.0.10:80)) balanced over backends (V(address:port)) by an haproxy running in a container
    of the pod. The containers share the pod's network namespace, so every one of them reaches the
    service address.
  - The haproxy configuration is rendered with Jinja2 on the controller, from the collection's
    template or your own (O(template)), and checked in the pod with C(haproxy -c) before anything is
    switched. Then the new service addresses are added to the pod's C(lo) (V(/32) or V(/128)), the
    configuration is renamed into place, haproxy's master reloads it (no connection is refused or
    dropped), and the addresses no service uses any more are removed.
  - The reload is asked on haproxy's master CLI (C(/run/haproxy/master.sock) in the service container), which answers
    when it is carried out (RV(reload_seconds)); a service container without that socket is reloaded by SIGUSR2.
  - If the validation fails, nothing is changed. If the reload fails, the previous configuration is
    put back, the added addresses removed, and the task fails with haproxy's own message; haproxy
    keeps serving the previous configuration.
  - The pod's current services are read from a JSON state file the module keeps beside
    C(haproxy.cfg) in the service container (C(/etc/haproxy/hyper-services.json)), never by parsing
    the configuration.
  - The services run in an haproxy container of the pod (O(container)), of the image of the
    C(hyper.pods.haproxy_image) role. A running pod without one gets it added in place (O(service_image)), the
    other containers keep running in the same VM, and the pod's own M(hyper.pods.hyper_pod) task keeps the
    container although it does not list it (RV(container_added)).
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
  - hyper.pods.services
attributes:
  action:
    support: full
    description: An action plugin renders the haproxy configuration on the controller, then runs the module on the hyper host.
  async:
    support: full
    description:
      - Runs under C(async), also with C(poll=0) and M(ansible.builtin.async_status), with the same result as
        without (check mode and diff mode too).
      - Unless O(purge=true) and O(state=present), the action plugin first reads the pod's services, synchronously
        (the configuration is rendered from them on the controller), then starts the module that applies it
        asynchronously.
  check_mode:
    support: full
    description: Reads the pod's services and configuration, reports the actions and the diff, changes nothing.
  diff_mode:
    support: full
    description: The rendered configuration before and after, and the service addresses of the pod's C(lo) before and after.
  idempotent:
    support: full
    description: Running the task again with the same services reports no change and does not reload haproxy.
  platform:
    support: full
    platforms: posix
    description: The module runs on the hyper host, next to libvirtd; the template is rendered on the controller.
options:
  pod:
    description:
      - Name of the pod, as given to M(hyper.pods.hyper_pod). The pod must be running.
    type: str
    required: true
  container:
    description:
      - Name of the pod's haproxy container (image of the C(hyper.pods.haproxy_image) role).
    type: str
    default: haproxy
  service_image:
    description:
      - Image of the haproxy container added to a pod that has none (O(container) is not one of its containers).
      - The default is where the C(hyper.pods.haproxy_image) role puts its image by default.
    type: str
    default: oci:/var/lib/hyper/local-images/oci:haproxy
  state:
    description:
      - V(present) adds or updates the listed services; V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - Remove the pod's services that are not listed.
    type: bool
    default: false
  template:
    description:
      - Your own Jinja2 template of C(haproxy.cfg), looked up on the controller like the
        M(ansible.builtin.template) module's C(src). The default is the collection's own template.
      - It gets the variable C(services), the final list of the pod's services sorted by name, each with
        C(name), C(address), C(family) (V(ipv4) or V(ipv6)), C(port), C(protocol), C(bind) (haproxy's
        address, for example V(ipv4@10.96.0.10:80)), C(balance), C(check) (C(enabled), C(interval)) and
        C(backends) (C(address), C(port), C(weight), C(enabled), C(endpoint)); C(hyper_service) (C(pod),
        C(container)); C(ansible_managed); and the task's variables.
      - Keep C(master-worker) and a C(stats socket ... expose-fd listeners) in its C(global) section, as
        the collection's template does, or reloads may refuse connections.
    type: str
  config:
    description:
      - The rendered configuration. Set by the action plugin; setting it yourself is an error.
    type: str
  services_hash:
    description:
      - Hash of the service list O(config) was rendered from. Set by the action plugin.
    type: str
  timeout:
    description:
      - Seconds to wait for haproxy to finish a reload.
    type: int
    default: 60
notes:
  - The services are kept with the pod's VM, in its config disk, so a guest reboot or a restart brings them back. A
    recreated VM starts with a fresh haproxy container and no services; run the task again.
seealso:
  - module: hyper.pods.hyper_pod
  - module: hyper.pods.hyper_exec
"""

EXAMPLES = r"""
- name: A pod with two web servers and the haproxy service container
  hyper.pods.hyper_pod:
    name: web
    memory: 256
    containers:
      - name: haproxy
        image: "{{ haproxy_image_refs.oci }}"
      - name: web1
        image: "{{ busybox_image_refs.oci }}"
        command: [httpd, -f, -p, "8081"]
      - name: web2
        image: "{{ busybox_image_refs.oci }}"
        command: [httpd, -f, -p, "8082"]

- name: Service 10.96.0.10:80 over both
  hyper.pods.hyper_service:
    pod: web
    services:
      - name: web
        address: 10.96.0.10
        port: 80
        backends:
          - {address: 127.0.0.1, port: 8081}
          - {address: 127.0.0.1, port: 8082, weight: 2}

- name: The same on IPv6, with health checks every second
  hyper.pods.hyper_service:
    pod: web
    services:
      - name: web6
        address: fd00::10
        port: 80
        check: {enabled: true, interval: 1000}
        backends:
          - {address: 127.0.0.1, port: 8081}

- name: Take web2 out of the rotation
  hyper.pods.hyper_service:
    pod: web
    services:
      - name: web
        address: 10.96.0.10
        port: 80
        backends:
          - {address: 127.0.0.1, port: 8081}
          - {address: 127.0.0.1, port: 8082, enabled: false}

- name: Remove one service
  hyper.pods.hyper_service:
    pod: web
    state: absent
    services:
      - name: web6

- name: Exactly these services, rendered from my own template
  hyper.pods.hyper_service:
    pod: web
    purge: true
    template: haproxy-web.cfg.j2
    services:
      - name: web
        address: 10.96.0.10
        port: 80
        backends:
          - {address: 127.0.0.1, port: 8081}
"""

RETURN = r"""
services:
  description: The pod's services after the task (or as they would be, in check mode), sorted by name.
  returned: always
  type: list
  elements: dict
  sample:
    - name: web
      address: 10.96.0.10
      family: ipv4
      port: 80
      protocol: tcp
      bind: ipv4@10.96.0.10:80
      balance: roundrobin
      check: {enabled: false, interval: 2000}
      backends:
        - {address: 127.0.0.1, port: 8081, weight: 1, enabled: true, endpoint: ipv4@127.0.0.1:8081}
actions:
  description:
    - What was done (or would be, in check mode), in order, among V(validate_config), V(add_vips),
      V(install_config), V(reload), V(remove_vips) and V(write_state).
    - After V(add container haproxy) (see RV(container_added)) when the service container was added.
  returned: success
  type: list
  elements: str
  sample: [validate_config, add_vips, install_config, reload, write_state]
config_changed:
  description: Whether the rendered configuration differs from the one haproxy ran.
  returned: success
  type: bool
reloaded:
  description: Whether haproxy was reloaded (never in check mode).
  returned: success
  type: bool
reload_seconds:
  description:
    - How long the reload took, from the request to haproxy's master until it reported the reload carried out.
  returned: when haproxy was reloaded
  type: float
  sample: 0.182
vips_added:
  description: Service addresses added to the pod's C(lo).
  returned: success
  type: list
  elements: str
  sample: [10.96.0.10]
vips_removed:
  description: Service addresses removed from the pod's C(lo).
  returned: success
  type: list
  elements: str
  sample: []
container_added:
  description:
    - Whether the service container was added to the pod (or would be, in check mode), in place; the other containers kept running.
  returned: when the pod had no service container
  type: bool
recreate_reasons:
  description: Why the pod's VM was recreated to add the service container (no free hot-plug slot, for example).
  returned: when adding the service container recreated the VM
  type: list
  elements: str
services_hash:
  description: SHA-256 of the canonical JSON of RV(services).
  returned: always
  type: str
duration:
  description: Seconds the module spent on the pod.
  returned: success
  type: float
haproxy_output:
  description: haproxy's output when it rejected the configuration or failed to reload.
  returned: failure of validation or reload
  type: list
  elements: str
  sample: ["[ALERT]    (12) : config : parsing [/etc/haproxy/haproxy.cfg.hyper-new:14] : unknown keyword 'bogus'"]
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.services import ensure_service_on_pod  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.args import SERVICE_OPTIONS  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "pod": {"type": "str", "required": True},
        "container": {"type": "str", "default": "haproxy"},
        "service_image": {"type": "str", "default": "oci:/var/lib/hyper/local-images/oci:haproxy"},
        "services": {"type": "list", "elements": "dict", "options": SERVICE_OPTIONS},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "purge": {"type": "bool", "default": False},
        "template": {"type": "str"},
        "config": {"type": "str"},
        "services_hash": {"type": "str"},
        "timeout": {"type": "int", "default": 60},
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def _ensure(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        return ensure_service_on_pod(params, check_mode, module._diff)

    run_module(module, _ensure)


if __name__ == "__main__":
    main()
