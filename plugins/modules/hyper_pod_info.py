#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_pod_info
short_description: Show hyper pods, their containers and their logs
version_added: 0.1.0
description:
  - Lists the hyper pods on a libvirt host, or one pod by name, with their run state and the state of
    their containers as the guest reports it.
  - The pods are found through the metadata that M(hyper.pods.hyper_pod) stores in each pod's libvirt domain.
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
attributes:
  action:
    support: none
    description: No action plugin; the module runs on the hyper host only.
  async:
    support: full
    description: Runs under C(async), also with C(poll=0) and M(ansible.builtin.async_status), with the same result as without.
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: N/A
    description: The module changes nothing.
  idempotent:
    support: full
    description: The module changes nothing.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, next to libvirtd.
options:
  name:
    description:
      - Name of one pod. All pods when not given.
    type: str
  labels:
    description:
      - Only pods that have all these labels with these values.
    type: dict
    default: {}
  logs:
    description:
      - Return the last O(logs) lines of each container's log (stdout and stderr) in RV(pods[].containers[].logs).
      - V(0) returns no logs. Logs are read from running pods only.
      - Each container's log is kept on the pod's scratch disk (O(hyper.pods.hyper_pod#module:scratch_size)), so it
        survives pod restarts; it holds at most twice O(hyper.pods.hyper_pod#module:log_size) bytes, the oldest lines go first.
    type: int
    default: 0
  events:
    description:
      - Return each pod's events on the host in RV(pods[].events), oldest first (see docs/runtime.md, "Events").
      - The host service C(hyper-hostd) writes them under the default state root C(/var/lib/hyper); without it running there are none.
      - The journal (C(<root>/hostd/events/<pod>.jsonl)) is root-only (mode 0600 in a 0700 directory), so the task must run as
        root; one it cannot read is an error. It keeps each pod's last 200 to 400 events and at most 256 KiB, each text field cut
        at 500 characters, and it is removed with the pod (O(hyper.pods.hyper_pod#module:state=absent)).
    type: bool
    default: false
  since:
    description:
      - With O(events), only the events after this time (seconds since the epoch, as in the events' C(time)).
      - With O(logs), only the log lines written after this time, by the guest's clock (the guest stamps
        each line as it writes it; lines written before the pod had a log writer have no time and are left out).
    type: float
notes:
  - Values that come from the guest (container states, logs) are data, never templates. Ansible treats
    every module result as untrusted, so the module does not mark them itself.
seealso:
  - module: hyper.pods.hyper_pod
"""

EXAMPLES = r"""
- name: All pods on the host
  hyper.pods.hyper_pod_info:
  register: all_pods

- name: Names and states
  ansible.builtin.debug:
    msg: "{{ all_pods.pods | items2dict(key_name='name', value_name='state') }}"

- name: One pod with the last 20 lines of each container's log
  hyper.pods.hyper_pod_info:
    name: web
    logs: 20
  register: web

- name: Fail when it is missing
  ansible.builtin.assert:
    that: web.exists

- name: Pods of one tier
  hyper.pods.hyper_pod_info:
    labels:
      tier: frontend
"""

RETURN = r"""
exists:
  description: Whether the pod named in O(name) exists.
  returned: when O(name) is given
  type: bool
  sample: true
hostd:
  description:
    - Whether the host service C(hyper-hostd) of the default state root C(/var/lib/hyper) runs.
    - It applies the pod restart policy and writes the events.
  returned: always
  type: dict
  contains:
    running:
      description: Whether it runs.
      type: bool
      sample: true
    pid:
      description: Its process id, when it runs.
      type: int
      sample: 4242
    log:
      description: Its log file.
      type: str
      sample: /var/lib/hyper/hostd/hyper-hostd.log
pods:
  description: The pods, sorted by name; the same shape as RV(hyper.pods.hyper_pod#module:pod).
  returned: always
  type: list
  elements: dict
  contains:
    scratch:
      description:
        - The pod VM's scratch disk (O(hyper.pods.hyper_pod#module:scratch_size)), C(null) when it has none.
        - C(size) is its size in bytes, C(allocated) the bytes it takes on the host now (a sparse file).
      returned: by M(hyper.pods.hyper_pod_info)
      type: dict
      sample: {size: 1073741824, allocated: 52428800}
    events:
      description:
        - What happened to the pod on the host, oldest first, at most 400, among C(created), C(started),
          C(stopped) and C(crashed) (with libvirt's C(reason), the C(restart_policy), the C(desired)
          state and the C(action) taken), C(restarted) (with C(attempt), C(delay) and C(seconds)),
          C(restart_failed) (with C(error), C(next_attempt) and C(next_delay)), C(rebooted) (with C(reboots), the
          reboots counted within the last 120 s), and C(crashed) with C(reason=reboot_loop) when the host service stopped
          a guest that kept rebooting (with C(reboots), C(window), and C(gave_up) once it leaves the VM stopped). Each has C(time)
          (seconds since the epoch), C(event) and C(vm_id).
      returned: by M(hyper.pods.hyper_pod_info), when its O(hyper.pods.hyper_pod_info#module:events) option is true
      type: list
      elements: dict
      sample: [{time: 1764700000.5, event: crashed, reason: failed, restart_policy: always, attempt: 1, delay: 1.0}]
    name:
      description: Pod name (the domain title).
      type: str
      sample: web
    vm_id:
      description: Name of the libvirt domain.
      type: str
      sample: hyper-3f9c2a1b
    uuid:
      description: UUID of the libvirt domain.
      type: str
      sample: 4b0f3c55-9a32-4f6c-8f0e-1b7d1fd3a2f0
    state:
      description: V(running), V(stopped), V(paused), or another libvirt state name.
      type: str
      sample: running
    vcpus:
      description: Virtual CPUs.
      type: int
      sample: 1
    memory:
      description: Memory in MiB.
      type: int
      sample: 128
    hostname:
      description: Host name of the VM.
      type: str
      sample: web
    accelerator:
      description: V(kvm) or V(tcg).
      type: str
      sample: tcg
    guest_image:
      description: Name of the guest image; V(null) for an explicit kernel and initrd.
      type: str
      sample: default
    volumes:
      description:
        - The pod's volumes as stored, disk volumes (C(kind=disk), C(size) in bytes, C(format)) and host
          directories (C(kind=host), C(host_path)). Empty when it has none.
      type: list
      elements: dict
      sample: [{name: db-data, kind: disk, size: 2147483648, format: qcow2}]
    networks:
      description: The networks the pod joins, in order; C(address) is the static address or V(null) (DHCP).
      type: list
      elements: dict
      sample: [{name: hyper, address: null}]
    addresses:
      description:
        - The pod's addresses as the guest reports them (through the agent), one item per network.
        - Empty when the pod is not running or its agent does not answer; in check mode, the static addresses only.
      type: list
      elements: dict
      contains:
        network:
          description: Network name.
          type: str
          sample: hyper
        interface:
          description: Interface name in the guest.
          type: str
          sample: eth0
        mac:
          description: MAC address of the interface.
          type: str
          sample: "52:54:00:3c:1f:a2"
        address:
          description: IPv4 address with its prefix length; V(null) when the interface has none.
          type: str
          sample: 10.88.0.123/24
    ports:
      description: Port mappings (as given, with defaults filled; ranges as V(LOW-HIGH)).
      type: list
      elements: dict
      sample: [{host_ip: null, host_port: 8080, pod_port: 80, protocol: tcp}]
    dns:
      description: Name servers of the containers' C(resolv.conf) given in the pod's spec (empty means the network's resolver).
      type: list
      elements: str
      sample: []
    dns_search:
      description: Search domains.
      type: list
      elements: str
      sample: [example.org]
    dns_options:
      description: Resolver options.
      type: list
      elements: str
      sample: [ndots:2]
    labels:
      description: Labels of the pod.
      type: dict
      sample: {tier: frontend}
    containers:
      description: The containers, in order.
      type: list
      elements: dict
      contains:
        name:
          description: Container name.
          type: str
          sample: httpd
        image:
          description: The image as given.
          type: str
          sample: docker://busybox:1.36
        digest:
          description: Manifest digest of the image in the cache.
          type: str
          sample: sha256:7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c
        restart_policy:
          description: The container's restart policy.
          type: str
          sample: never
        state:
          description:
            - As the guest reports it (V(running), V(starting), V(restarting), V(exited), V(stopped),
              V(created)); V(stopped) while the VM is off; V(unknown) when the guest agent does not
              answer; V(missing) when the guest does not know the container.
          type: str
          sample: running
        pid:
          description: PID of the container's init process in the guest.
          type: int
          sample: 212
        exit_code:
          description: Exit code of its last run, if it exited.
          type: int
          sample: null
        restarts:
          description: How often the guest restarted it.
          type: int
          sample: 0
        cpus:
          description: The container's O(hyper.pods.hyper_pod#module:containers[].cpus), V(null) when not limited.
          type: float
          sample: 0.5
        memory:
          description: The container's memory limit in bytes, V(null) when not limited.
          type: int
          sample: 33554432
        pids_limit:
          description: The container's O(hyper.pods.hyper_pod#module:containers[].pids_limit), V(null) when not limited.
          type: int
          sample: 64
        cap_add:
          description: Capabilities added (with C(CAP_), or V(ALL)).
          type: list
          elements: str
          sample: [CAP_NET_ADMIN]
        cap_drop:
          description: Capabilities dropped (with C(CAP_), or V(ALL)).
          type: list
          elements: str
          sample: [ALL]
        read_only:
          description: Whether the root filesystem is read-only.
          type: bool
          sample: false
        no_new_privileges:
          description: Whether C(no_new_privs) is set.
          type: bool
          sample: false
        ulimits:
          description: The container's O(hyper.pods.hyper_pod#module:containers[].ulimits), C(name), C(soft), C(hard) (V(-1) for no limit).
          type: list
          elements: dict
          sample: [{name: nofile, soft: 1024, hard: 2048}]
        sysctls:
          description: The container's O(hyper.pods.hyper_pod#module:containers[].sysctls).
          type: dict
          sample: {net.ipv4.ip_unprivileged_port_start: "0"}
        tmpfs:
          description: The container's tmpfs mounts, C(path) and C(options) (defaults included).
          type: list
          elements: dict
          sample: [{path: /tmp, options: [nosuid, nodev, noexec, size=16m]}]
        labels:
          description: The container's labels.
          type: dict
          sample: {team: web}
        hostname:
          description: The container's own O(hyper.pods.hyper_pod#module:containers[].hostname); V(null) when it has the pod's.
          type: str
          sample: null
        healthcheck:
          description: The container's healthcheck, normalised (C(test) an argv, times in seconds); V(null) without one.
          type: dict
          sample: {test: [/bin/sh, -c, "wget -q -O- localhost:8080"], interval: 30.0, timeout: 30.0, retries: 3, start_period: 0.0, failure_action: none}
        health:
          description:
            - The healthcheck's state as the guest reports it; V(null) without a healthcheck, while the VM is off or
              when the guest agent does not answer.
            - C(status) is V(starting), V(healthy) or V(unhealthy); C(failing_streak) the failed checks in a row;
              C(log) the last results, newest first (at most 5), each with C(exit_code) (V(null) when it timed out),
              C(duration) and C(age) in seconds, and C(output) (its first 4 KiB, as printable text).
          type: dict
          sample: {status: healthy, failing_streak: 0, log: [{exit_code: 0, duration: 0.31, age: 2.4, output: "ok\n"}]}
        logs:
          description: The last lines of the container's log, as many as O(hyper.pods.hyper_pod_info#module:logs) asks.
          returned: by M(hyper.pods.hyper_pod_info), when its O(hyper.pods.hyper_pod_info#module:logs) option is above 0
          type: list
          elements: str
          sample: ["httpd: listening on 8080"]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.info import pod_info_with_events  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "name": {"type": "str"},
        "labels": {"type": "dict", "default": {}},
        "logs": {"type": "int", "default": 0},
        "events": {"type": "bool", "default": False},
        "since": {"type": "float"},
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, pod_info_with_events)


if __name__ == "__main__":
    main()
