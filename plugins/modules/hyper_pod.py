#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_pod
short_description: Manage hyper pods, containers in a small QEMU VM of their own
version_added: 0.1.0
description:
  - Creates, starts, stops, recreates and removes a hyper pod, a small QEMU virtual machine managed
    by libvirt that runs a group of OCI containers under C(crun). The containers share the VM's
    network namespace, so they reach each other on C(localhost).
  - The pod's VM is a persistent libvirt domain named C(hyper-<8 hex digits>) (the VM id) whose
    title is the pod name. The normalised pod spec and its hash are stored in the domain's metadata;
    there is no other database.
  - Container images are copied into the host's image cache with C(skopeo), unpacked with C(umoci)
    and attached to the VM as read-only disks shared by every pod that uses the same image digest.
  - Options that are not set are not compared with the existing pod, and keep their stored values.
    A change of O(containers) (including a new image digest or injected file content), O(volumes),
    O(memory), O(vcpus), O(hostname), O(guest_image), O(kernel), O(initrd), O(kernel_args) or
    O(accelerator) replaces the VM; a change of O(labels) only updates the metadata. Volumes keep
    their data across a new VM.
  - The pod boots itself. Everything its guest needs (containers with their env values, restart policies
    and files, the network, volume mounts, services) is in a read-only config disk of the VM, built on
    the host from the stored spec (C(<root>/pods/<vm id>/config.tar), root only). The guest brings the
    pod up from it at every boot, so a guest reset or a start brings back the same pod without any task; the host
    waits for one "pod ready" answer. See C(docs/runtime.md).
  - A new pod whose VM would be of the template of a M(hyper.pods.hyper_pool) pool (guest image, O(vcpus), O(memory),
    accelerator, network names) starts from one of its ready, paused VMs instead of booting one; the VM keeps its VM
    id and becomes the pod's. Pods with host directory shares or O(kernel_args), and any start when no pool VM is ready
    or the claimed one fails, boot cold. RV(start) and RV(start_reason) say which and why. See C(docs/pool.md).
  - If creating or starting the pod fails (missing image, kernel panic, guest agent silent for
    O(wait_timeout) seconds, a container that exits at once), the new VM is destroyed and undefined
    and its console log removed. The error names the step, the pod and the container, and shows the
    last lines of the guest console or of the container's log.
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
  - hyper.pods.common.host
  - hyper.pods.services
  - hyper.pods.images
attributes:
  action:
    support: full
    description: An action plugin renders the haproxy configuration of O(services) on the controller, then runs the module on the hyper host.
  async:
    support: full
    description:
      - Runs under C(async), also with C(poll=0) and M(ansible.builtin.async_status), with the same result as
        without (check mode and diff mode too). A loop of pods with C(poll=0) starts them all at once on one host.
      - Boots beyond the host's boot slots queue for one (C(boot_slots) in C(host.json), set by the C(hyper.pods.host)
        role); the queue is bounded, and a pod that gets no slot in time fails alone and leaves nothing behind.
      - Ansible kills a module at its C(async) limit, and a pod killed while it boots cannot clean up after itself, so
        a task that starts a pod refuses an C(async) limit shorter than O(wait_timeout) plus a margin.
  check_mode:
    support: full
    description: Reports the planned actions and diff without pulling images or touching libvirt.
  diff_mode:
    support: full
    description: The diff shows the stored pod spec (and run state) before and after.
  idempotent:
    support: full
    description: Running the task again with the same options reports no change, except with O(state=restarted).
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, next to libvirtd.
options:
  name:
    description:
      - Name of the pod, unique on the host. 1 to 63 lower-case letters, digits and V(-), starting and
        ending with a letter or digit.
    type: str
    required: true
  state:
    description:
      - V(started) creates the pod if needed and makes sure it runs with every container running.
      - V(present) creates (defines) the pod without starting it; an existing pod keeps its run state,
        also when it must be recreated.
      - V(stopped) creates the pod if needed and makes sure it is not running. Each container gets
        its C(stop_signal) and up to its C(stop_timeout), the guest is shut down, and after
        O(stop_timeout) seconds in all the VM is powered off.
      - V(restarted) stops the pod as V(stopped) does and starts it again; it always reports a change.
      - V(absent) stops the pod and removes its VM and per-pod files. The shared image cache and
        guest images are kept.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  vcpus:
    description:
      - Number of virtual CPUs. A new pod gets V(1).
    type: int
  memory:
    description:
      - Memory of the VM in MiB, at least V(128). A new pod gets V(128).
      - The default guest boots from about 96 MiB; 128 MiB leaves about 57 MiB for the containers.
    type: int
  labels:
    description:
      - Labels of the pod, strings to strings, to find pods with M(hyper.pods.hyper_pod_info).
      - Changing them updates the stored spec only; the VM keeps running.
    type: dict
  restart_policy:
    description:
      - What the host service C(hyper-hostd) does when the pod's VM ends without a task asking
        (docs/runtime.md, "Restart policy"). V(never) leaves it down; V(on-failure) starts it again
        after a guest panic or when QEMU died or was killed; V(always) also after the guest powered off.
        Restarts back off (1 s, doubling, at most 60 s; reset after 120 s of running).
      - A guest reboot (C(reboot) in the guest, C(virsh reset)) does not end the VM of a pod with a config disk
        (libvirt C(on_reboot=restart)); its guest brings the pod up again by itself, whatever the policy. The VM of a
        pod made before the config disk ends at a guest reboot, which counts as a power off here.
      - A pod stopped by a task (O(state=stopped)) or destroyed on request (C(virsh destroy)) is never restarted.
      - A new pod gets V(never), what a pod did before this option existed, so that nothing comes back unasked.
        Changing it updates the pod in place (the VM keeps running).
      - Needs the host service to run (the M(hyper.pods.host) role starts it;
        M(hyper.pods.hyper_pod_info) says whether it runs); the module itself does not need it.
    type: str
    choices: [never, on-failure, always]
  autostart:
    description:
      - Set libvirt's autostart flag on the pod's domain, so that libvirt starts the VM when libvirtd starts
        (after a host reboot). A new pod gets V(false), so that a host reboot brings back only the pods that ask for it.
        Changing it updates the pod in place.
      - A pod stopped by a task (O(state=stopped)) has the flag cleared until a task starts it again, so that a host
        reboot does not bring back a pod stopped on purpose. After the reboot the host service takes the pod over, its
        port rules are rebuilt from the stored spec (docs/runtime.md, "Host reboot").
    type: bool
  scratch_size:
    description:
      - Size of the pod's scratch disk, such as V(512M) or V(2G) (whole MiB, V(64M) to V(16T)). It is a sparse file
        on the host, C(<root>/scratch/<vm id>.raw), that holds the containers' writable layers and logs,
        so that they take no guest memory and survive a pod restart, a guest reboot and a QEMU crash
        (docs/runtime.md, "Scratch disk"). It takes host disk space only as the containers write, and
        never more than this size; a container that fills it gets C(ENOSPC), not the guest's memory.
      - V(0) gives the pod no scratch disk. Writable layers and logs are then in the guest's memory (tmpfs),
        lost when the VM stops.
      - A new pod gets V(1G). A pod made before this option existed has none until it is recreated.
        Changing it recreates the VM with an empty disk (as a changed spec always does).
    type: str
  log_size:
    description:
      - Bound of each container's log, such as V(10M) (whole MiB, V(1M) to V(1G)). The guest keeps the
        current file and one rotated file of at most this size each, on the scratch disk.
        M(hyper.pods.hyper_pod_info) reads them (O(hyper.pods.hyper_pod_info#module:logs)).
      - A new pod gets V(10M). Changing it recreates the VM.
    type: str
  hostname:
    description:
      - Host name of the VM and of its containers (an RFC 1123 name). Defaults to O(name).
    type: str
  guest_image:
    description:
      - Name of the guest image (kernel and initrd) under C(<root>/images/), built by the
        C(hyper.pods.guest_image) role. Used when neither O(kernel) nor O(initrd) is given; a new
        pod gets V(default).
      - When given, a rebuilt image (a new initrd) replaces the VM.
      - Mutually exclusive with O(kernel) and O(initrd).
    type: str
  kernel:
    description:
      - Path of a kernel to boot instead of a guest image. Needs O(initrd) as well.
    type: path
  initrd:
    description:
      - Path of an initrd to boot instead of a guest image. Needs O(kernel) as well.
    type: path
  kernel_args:
    description:
      - Extra kernel arguments, appended to those of the guest image and C(hyper.hostname).
    type: str
  containers:
    description:
      - The containers of the pod, started in this order. Compared as a whole with the stored list.
      - When not given, a new pod has no containers and an existing pod keeps its own.
      - On a running pod a change of the containers alone changes only them, in the same VM (one container
        changed, one container touched) - a container that changed is replaced, one added is started, one
        removed is stopped and removed, the others keep running with the same pid, and a new image's disk is
        hot-plugged. RV(actions) and RV(container_changes) name each container and why; the VM is recreated
        only when it must be (RV(recreate_reasons)).
      - A service container that M(hyper.pods.hyper_service) added to the pod is kept although this list does not name it.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name of the container, unique within the pod. Lower-case letters, digits, V(_), V(.) and
            V(-), starting with a letter or digit.
        type: str
        required: true
      image:
        description:
          - The image, as a C(skopeo) reference. V(docker://NAME[:TAG][@DIGEST]) (a registry),
            V(oci:/PATH[:TAG]) (an OCI layout), V(oci-archive:/FILE[:TAG]),
            V(docker-archive:/FILE[:NAME:TAG]), or a bare V(NAME[:TAG]) resolved against
            O(default_transport).
        type: str
        required: true
      command:
        description:
          - The command, an argv list (no shell). Replaces the image's C(Cmd).
        type: list
        elements: str
      entrypoint:
        description:
          - The entrypoint, an argv list (no shell). Replaces the image's C(Entrypoint) and drops its
            C(Cmd) unless O(containers[].command) is given too. V([]) clears it.
        type: list
        elements: str
      env:
        description:
          - Environment variables, names to strings, over the image's C(Env).
          - Values must be strings; quote numbers and booleans (or use the P(ansible.builtin.string#filter)
            filter), so that C(true) does not silently become C(True).
          - The values may be secrets, so this option is C(no_log). Ansible hides every value given here
            wherever it occurs in the module's result, messages and logs (C(********) inside a longer text).
            The diff shows every env value, stored ones included, as C(********), and a value that changes
            as V(******** (changed\)).
          - Because Ansible hides a value wherever it occurs, a short or common value (V(1), V(true),
            V(8080)) is also hidden inside unrelated text of the result, such as RV(pod.vm_id).
          - The libvirt domain's metadata keeps only a keyed digest of each value (C(hmac-sha256:...), with the
            key in C(<root>/secret.key), root only). The values are kept root-only on the host
            (C(<root>/pods/<vm id>/env.json) and the pod's config disk) and in the container's C(config.json)
            in the guest. Pods made by older versions keep clear values in the metadata until their next change.
        type: dict
      workdir:
        description:
          - Working directory (absolute). Defaults to the image's C(WorkingDir), else C(/).
        type: str
      user:
        description:
          - User to run as, V(UID), V(UID:GID), V(NAME) or V(NAME:GROUP) (names from the image's
            C(/etc/passwd) and C(/etc/group)). Defaults to the image's C(User), else root.
        type: str
      restart_policy:
        description:
          - When the guest restarts the container after it exits. V(on-failure) restarts it after a
            non-zero exit code.
        type: str
        choices: [never, on-failure, always]
        default: never
      stop_signal:
        description:
          - Signal that asks the container to stop, by name (V(SIGTERM), V(TERM), V(SIGINT) ...).
        type: str
        default: SIGTERM
      stop_timeout:
        description:
          - Seconds to wait after O(containers[].stop_signal) before the container is killed.
        type: int
        default: 10
      volumes:
        description:
          - Volumes of the pod (O(volumes)) mounted into this container. See C(docs/storage.md).
        type: list
        elements: dict
        suboptions:
          name:
            description:
              - The name of a volume declared in O(volumes).
            type: str
            required: true
          path:
            description:
              - Absolute path in the container where the volume appears (created if missing).
            type: str
            required: true
          read_only:
            description:
              - Mount it read-only in this container.
            type: bool
            default: false
      files:
        description:
          - Files injected into the container at every start, like hyperd's C(files[]). Each is a bind mount
            of a copy in the guest, so the container can write it but not replace it by a rename.
          - The content is kept on the hyper host for later starts, under C(<root>/pods/<vm id>/files)
            (mode 0600, removed with the pod). The stored spec and the diff show only a salted SHA-256 of it.
        type: list
        elements: dict
        suboptions:
          path:
            description:
              - Absolute path of the file in the container.
            type: str
            required: true
          content:
            description:
              - The content, as text. It may be a secret, so this option is C(no_log).
              - Give exactly one of O(containers[].files[].content) and O(containers[].files[].src).
            type: str
          src:
            description:
              - Absolute path of a file on the hyper host (where the module runs) to inject. A change of
                its content replaces the VM, as a new image digest does.
            type: path
          mode:
            description:
              - Permissions, an octal string such as V('0640') (quote it).
            type: raw
            default: '0644'
          owner:
            description:
              - V(UID[:GID]) or V(NAME[:GROUP]); names come from the container image's C(/etc/passwd) and
                C(/etc/group).
            type: str
            default: '0:0'
      cpus:
        description:
          - CPU time the container may use, in CPUs (V(0.5) is half of one), as docker's C(--cpus), a cgroup v2
            C(cpu.max) quota over a 100 ms period. At most the pod's O(vcpus). See C(docs/containers.md).
        type: float
      memory:
        description:
          - Memory limit of the container (cgroup v2 C(memory.max), no swap). A number is MiB, as the pod's O(memory);
            a string may carry a unit as docker's C(--memory) does (V(64m), V(512k), V(1g), V(33554432b)). At least
            6 MiB, at most the pod's O(memory).
          - A container that goes over it is killed by the guest kernel's OOM killer inside its own cgroup; the other
            containers and the guest keep running. Its exit code is then 137 and its O(containers[].restart_policy) applies.
        type: raw
      pids_limit:
        description:
          - Most processes and threads the container may have at once (cgroup v2 C(pids.max)); a fork beyond it fails.
        type: int
      cap_add:
        description:
          - Capabilities to add to docker's default set, with or without C(CAP_) (V(NET_ADMIN), V(CAP_SYS_TIME)), or V(ALL).
        type: list
        elements: str
      cap_drop:
        description:
          - Capabilities to drop from docker's default set, or V(ALL) (then only O(containers[].cap_add) is kept), as docker does.
        type: list
        elements: str
      read_only:
        description:
          - Mount the container's root filesystem read-only. Its O(containers[].tmpfs) mounts, volumes and files stay writable.
        type: bool
      no_new_privileges:
        description:
          - Set C(no_new_privs) on the container's processes, so that setuid binaries and file capabilities give nothing more.
        type: bool
      ulimits:
        description:
          - Resource limits of the container's processes, docker's V(NAME:SOFT[:HARD]) (V(nofile:1024:2048)) or mappings
            with C(name), C(soft) and C(hard); V(-1) or V(unlimited) for no limit. Names as docker's C(--ulimit)
            (V(nofile), V(nproc), V(core), V(memlock), V(stack) ...). A container gets C(nofile) 65536 by default.
        type: list
        elements: raw
      sysctls:
        description:
          - Namespaced kernel parameters, names to values. Only C(net.*), C(fs.mqueue.*) and C(kernel.msgmax), C(kernel.msgmnb),
            C(kernel.msgmni), C(kernel.sem), C(kernel.shmall), C(kernel.shmmax), C(kernel.shmmni), C(kernel.shm_rmid_forced);
            any other is refused.
          - The IPC ones are the container's own. The containers of a pod share one network namespace (the VM's), so C(net.*)
            ones apply to the whole pod, and two containers may not give one different values.
        type: dict
      tmpfs:
        description:
          - tmpfs mounts, docker's V(PATH[:OPTIONS]) (V(/run:size=16m,mode=1777)) or mappings with C(path) and C(options).
          - They get C(nosuid), C(nodev) and C(noexec) unless the options say otherwise. Options are C(size), C(mode), C(uid),
            C(gid), C(nr_inodes), C(nr_blocks) and the flags C(ro), C(rw), C(exec), C(suid), C(dev), C(noatime) and their opposites.
          - Their content is guest memory, counted in the container's O(containers[].memory).
        type: list
        elements: raw
      labels:
        description:
          - Labels of the container, strings to strings, set as annotations of its OCI runtime config. Keys starting with
            C(hyper.pods.) are the collection's own.
        type: dict
      env_file:
        description:
          - A file B(on the controller) with environment variables, read as docker_container reads C(env_file)
            (C(KEY=VALUE) lines; lines starting with C(#) and empty lines are skipped; values are taken as they are,
            quotes included). O(containers[].env) wins over it. A relative path is looked up as C(copy)'s C(src) is.
          - Read by the action plugin, which sends the variables as O(containers[].env) (C(no_log)).
        type: path
      hostname:
        description:
          - Host name of this container (its own UTS namespace), instead of the pod's O(hostname). The containers still share
            the pod's network namespace, so the name changes only what C(hostname) and C(uname -n) say in it.
        type: str
      healthcheck:
        description:
          - A check the guest runs in the container (with C(crun exec)) every O(containers[].healthcheck.interval); its state
            (V(starting), V(healthy), V(unhealthy)) and its last 5 results with their first 4 KiB of output are in
            RV(pod.containers[].health). See O(wait_healthy) and C(docs/containers.md).
        type: dict
        suboptions:
          test:
            description:
              - "The check, as docker's C(HEALTHCHECK): V([CMD, ARG...]) or a plain argv list (no shell), V([CMD-SHELL, COMMAND])
                or a string (run with C(/bin/sh -c)), or V([NONE]) (no check). Exit code 0 is healthy."
            type: raw
            required: true
          interval:
            description:
              - Time between the end of one check and the next, seconds or docker's form (V(30s), V(1m30s)); at least 1 s.
                Defaults to V(30s).
            type: raw
          timeout:
            description:
              - A check still running after this is killed and counts as failed. Defaults to V(30s); at least 1 s.
            type: raw
          retries:
            description:
              - Failed checks in a row that make the container V(unhealthy). Defaults to V(3).
            type: int
          start_period:
            description:
              - Time after the container started in which failed checks do not count (a passing one makes it V(healthy)).
                Defaults to V(0s).
            type: raw
          failure_action:
            description:
              - V(none) (the default, as docker) only reports an unhealthy container. V(restart) stops it (its
                O(containers[].stop_signal), SIGKILL after O(containers[].stop_timeout)) so that its O(containers[].restart_policy)
                starts it again, which must then be V(on-failure) or V(always).
            type: str
            choices: [none, restart]
  volumes:
    description:
      - The pod's volumes, mounted into containers with O(containers[].volumes). Compared as a whole with the
        stored list; a change replaces the VM. See C(docs/storage.md).
      - A B(disk volume) (O(volumes[].size)) is a disk image C(<root>/volumes/<name>.<format>), created and
        formatted (ext4) on first use and kept when the pod is removed, unless O(volumes_purge=true). It is
        never resized or converted; a disk volume belongs to one pod at a time.
      - A B(host directory) (O(volumes[].host_path)) is shared with virtio-fs; libvirt starts C(virtiofsd).
        The pod's memory is then shared memory (memfd).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Name of the volume, unique within the pod and, for disk volumes, on the host. Lower-case letters,
            digits, V(_), V(.) and V(-), starting with a letter or digit; no V(/).
        type: str
        required: true
      size:
        description:
          - Size of a disk volume, such as V(512M) or V(2G) (powers of 1024), at least V(16M). Required for a
            disk volume; only used to create it, and checked against an existing one.
        type: str
      format:
        description:
          - Image format of a disk volume, V(qcow2) when not given. Both are sparse on the host.
        type: str
        choices: [qcow2, raw]
      host_path:
        description:
          - An existing directory on the hyper host to share into the pod (instead of a disk volume).
          - Read-only is enforced by the guest's mount and the containers' bind mounts; libvirt 9 cannot make
            a virtio-fs share read-only on the host side.
        type: path
  volumes_purge:
    description:
      - With O(state=absent), also delete the pod's disk volumes (those it has, and those given in
        O(volumes)), even when the pod is gone already. Host directories are never touched.
      - Without it, removing a pod never deletes a volume.
    type: bool
    default: false
  networks:
    description:
      - The libvirt networks the pod joins, one virtio-net interface each, in this order. The first one
        carries the default route and, unless O(dns) is given, the name server of the containers.
      - Each item is a network name or a mapping with the keys C(name) and C(address).
      - V(none) (alone) gives an isolated pod with loopback only.
      - When not given, a new pod joins V(hyper), the network the C(hyper.pods.host) role sets up, and an
        existing pod keeps its networks. A change means a new VM.
      - The guest brings its interfaces up at every boot, before the containers start (DHCP from
        libvirt, or the static address). See C(docs/networking.md).
      - C(name) is the libvirt network (C(virsh net-list --all)); it must exist, or the
        task fails before anything is created.
      - C(address) is an optional static IPv4 address, V(10.88.0.10) or V(10.88.0.10/24), in the
        network's subnet, outside its DHCP range, not another pod's static address. The prefix length
        defaults to the network's. Without it, the address comes by DHCP.
    type: list
    elements: raw
  ports:
    description:
      - Port mappings from the host to the pod, applied with nftables in the tables C(ip hyper_pods) and
        C(ip6 hyper_pods) of the collection's own. They target the pod's address on its first network,
        its static address or its DHCP lease in libvirt's network (IPv4), the SLAAC address of its MAC in
        the network's IPv6 /64 (IPv6); never an address the guest reports.
      - The rules are added when the pod starts and removed when it stops or is removed; a run on a
        running pod puts back rules that went missing (action V(sync_ports)). Changing O(ports) updates
        the rules in place (action V(update_ports)); the VM keeps running.
      - A host port that another pod maps already (same protocol, same or any O(ports[].host_ip)) fails
        the task before anything is created.
      - The mappings answer on the host's addresses from other machines and from the host itself, C(127.0.0.1)
        included, as with C(docker run -p). For that the collection sets
        C(net.ipv4.conf.<bridge>.route_localnet=1) on the bridge of the pod's first network, next to rules that
        drop packets from that bridge to or from C(127.0.0.0/8). See C(docs/networking.md).
      - When not given, a new pod maps no port and an existing pod keeps its mappings.
    type: list
    elements: dict
    suboptions:
      host_port:
        description:
          - Host port (V(8080)) or range (V(8000-8010)).
        type: raw
        required: true
      pod_port:
        description:
          - Pod port or range, as many ports as O(ports[].host_port). Defaults to O(ports[].host_port).
        type: raw
      protocol:
        description:
          - Transport protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
      host_ip:
        description:
          - Host address the mapping answers on. Defaults to all of the host's IPv4 addresses (C(127.0.0.1)
            included) and, when the pod's first network has an IPv6 subnet, all of its IPv6 addresses.
          - An IPv4 address (V(127.0.0.1) too) or V(0.0.0.0) (the same as leaving it out).
          - An IPv6 address of the host, or V(::) for all of them; the pod's first network must have an IPv6
            /64 (C(<ip family='ipv6' prefix='64'>) in its libvirt definition), or the task fails before anything
            is created. The network C(hyper) of the hyper.pods.host role has none.
          - V(::1) is refused, Linux cannot forward IPv6 loopback traffic to another host (there is no
            C(route_localnet) for IPv6); use V(127.0.0.1).
        type: str
  dns:
    description:
      - Name servers (IPv4 or IPv6 addresses, at most 3) written to each container's C(/etc/resolv.conf).
      - When not given, the resolver of the pod's first network (libvirt's dnsmasq at the network's
        address); a pod with O(networks=none) then has no name server.
      - C(dns), O(dns_search) and O(dns_options) form one field of the stored spec; a change means a new VM.
    type: list
    elements: str
  dns_search:
    description:
      - Search domains for C(/etc/resolv.conf) (at most 6).
    type: list
    elements: str
  dns_options:
    description:
      - Resolver options for C(/etc/resolv.conf), such as V(ndots:2) or V(edns0).
    type: list
    elements: str
  default_transport:
    description:
      - Transport for a bare O(containers[].image) name. V(docker://) (Docker Hub), or
        V(docker://REGISTRY[/NAMESPACE]/), or V(oci:/PATH) of an OCI layout in which the bare name is a tag.
    type: str
    default: docker://
  pull:
    description:
      - When the containers' images are copied into the host's image cache.
      - V(missing) copies an image into the cache only when it is not there (a local source also when it
        changed); a registry image already cached is used without network access. V(always) copies it again
        (C(skopeo) skips the layers it has), and a new digest then replaces the VM.
      - V(never) copies nothing and does not look at the source; every image must be in the cache already
        (M(hyper.pods.hyper_image), or an earlier task), else the task fails naming the container and the image,
        in check mode too, before anything is made.
      - "As community.docker's C(docker_container) C(pull): V(missing) is C(pull: false) or C(missing), V(always) is
        C(pull: true) or C(always), V(never) is C(never); here it applies to all the pod's containers."
    type: str
    choices: [missing, always, never]
    default: missing
  wait:
    description:
      - Wait until every container runs before returning.
      - The guest agent must answer in any case, since the host asks the guest once whether the pod is up.
      - Without O(wait) the task returns once the guest has carried out its config disk, without waiting
        for the containers to run.
    type: bool
    default: true
  wait_settle:
    description:
      - With O(wait), how long (seconds) each container must be seen running with one pid, no restart in
        between, before the start returns. A container that exits, restarts or is stopped before that fails
        the task with its log, and a new pod is removed again.
      - Counted for each container from the moment the host first sees it running, not after the last
        container's start; the host checks again only once the time is up. V(0) returns as soon as every
        container runs, as C(docker run -d) or C(docker compose up --wait) do. A container that exits a moment
        later does not fail the task then; its state in M(hyper.pods.hyper_pod_info) shows it.
      - The default catches a command that fails at once (a missing binary, a bad argument) while keeping the
        wait short; raise it for a process that may fail later in its start (it is like Kubernetes'
        C(minReadySeconds)). To wait until the containers' healthchecks pass, use O(wait_healthy).
      - Only a start waits for it (a create, V(restarted), a stopped pod started, and the containers a change
        adds or replaces in a running pod); a task that finds the pod running and its containers unchanged
        does not. The host service's restarts (C(docs/runtime.md)) use the default.
    type: float
    default: 0.2
  wait_timeout:
    description:
      - Seconds from starting the VM until its guest agent answers, the guest has brought the pod up from its
        config disk and (with O(wait)) every container runs.
      - The wait for one of the host's boot slots comes before and is not part of it (C(boot_queue_timeout) in
        C(host.json), see C(docs/concurrency.md)).
    type: int
    default: 120
  wait_healthy:
    description:
      - After the task (also when it changed nothing), wait until every container with a O(containers[].healthcheck) is
        V(healthy). The task fails as soon as one turns V(unhealthy) or exits, or after O(wait_healthy_timeout), with the
        check's last output and the container's log. The pod is left running then, so that it can be looked at.
      - Not in check mode, and not for a pod that does not run.
    type: bool
    default: false
  wait_healthy_timeout:
    description:
      - Seconds O(wait_healthy) waits.
    type: int
    default: 120
  recreate:
    description:
      - Replace the VM even when nothing changed. Ignored with O(state=absent).
    type: bool
    default: false
  stop_timeout:
    description:
      - Seconds for stopping the pod's containers gracefully before the VM is powered off. All containers
        stop at once, each within the lesser of its own O(containers[].stop_timeout) and this.
    type: int
    default: 30
  service_image:
    description:
      - Image of the haproxy container added for O(services), built by the C(hyper.pods.haproxy_image) role.
    type: str
    default: oci:/var/lib/hyper/local-images/oci:haproxy
  service_template:
    description:
      - Your own Jinja2 template of C(haproxy.cfg) for O(services), as O(hyper.pods.hyper_service#module:template).
    type: str
  service_config:
    description:
      - The rendered configuration of O(services). Set by the action plugin; setting it yourself is an error.
    type: str
  services_hash:
    description:
      - Hash of the service list O(service_config) was rendered from. Set by the action plugin.
    type: str
notes:
  - The options can come from a Kubernetes manifest or a hyperd pod file through the P(hyper.pods.from_kube#filter) and
    P(hyper.pods.from_hyperd#filter) filters. What they return may hold a key C(warnings), the fields they did not
    convert; the task shows them as warnings and does not pass them to the module.
  - Values in the result that come from the guest (container states, exit codes) are data, never
    templates. Ansible treats every module result as untrusted, so the module does not mark them itself.
seealso:
  - module: hyper.pods.hyper_pod_info
  - module: hyper.pods.hyper_service
  - module: hyper.pods.hyper_image
  - name: skopeo transports
    description: The image reference forms C(skopeo) understands.
    link: https://github.com/containers/image/blob/main/docs/containers-transports.5.md
"""

EXAMPLES = r"""
- name: Run a web server and a helper in one pod
  hyper.pods.hyper_pod:
    name: web
    memory: 256
    labels:
      tier: frontend
    containers:
      - name: httpd
        image: docker://busybox:1.36
        command: [httpd, -f, -p, "8080"]
        restart_policy: always
      - name: sidecar
        image: busybox:1.36
        command: [sleep, "3600"]
        env:
          MODE: "quiet"
  register: web_pod

- name: Show where it runs
  ansible.builtin.debug:
    msg: "{{ web_pod.pod.vm_id }} is {{ web_pod.pod.state }}"

- name: Images from a local OCI layout, no registry needed
  hyper.pods.hyper_pod:
    name: offline
    default_transport: oci:/srv/images
    containers:
      - name: app
        image: busybox
        command: [sleep, infinity]

- name: An image from a private registry, with credentials for this task only
  hyper.pods.hyper_pod:
    name: private
    registry_auth:
      username: deploy
      password: "{{ vault_registry_token }}"
    containers:
      - name: app
        image: docker://registry.example:5000/team/app:2.1

- name: Only images pulled beforehand (hyper.pods.hyper_image); fails naming the container otherwise
  hyper.pods.hyper_pod:
    name: private
    pull: never
    containers:
      - name: app
        image: docker://registry.example:5000/team/app:2.1

- name: A web server reachable on the host's port 8080, with a static address and its own DNS settings
  hyper.pods.hyper_pod:
    name: web
    networks:
      - name: hyper
        address: 10.88.0.10
    ports:
      - host_port: 8080
        pod_port: 80
      - host_port: 9000-9009
        protocol: udp
    dns: [10.88.0.1]
    dns_search: [example.org]
    dns_options: [ndots:2]
    containers:
      - name: httpd
        image: docker://busybox:1.36
        command: [httpd, -f, -p, "80"]

- name: An isolated pod (loopback only)
  hyper.pods.hyper_pod:
    name: batch
    networks: none
    containers:
      - name: job
        image: docker://busybox:1.36
        command: [sleep, "3600"]

- name: Stop the pod (containers get their stop signal, all at once, then the VM is powered off)
  hyper.pods.hyper_pod:
    name: web
    state: stopped
    stop_timeout: 20

- name: Boot a kernel and initrd of our own
  hyper.pods.hyper_pod:
    name: custom-kernel
    kernel: /srv/guest/vmlinuz
    initrd: /srv/guest/initrd.img
    kernel_args: loglevel=7
    accelerator: tcg

- name: Remove the pod
  hyper.pods.hyper_pod:
    name: web
    state: absent

- name: A database with a named volume, a shared host directory and an injected file
  hyper.pods.hyper_pod:
    name: db
    volumes:
      - name: db-data
        size: 2G
        format: qcow2
      - name: db-backups
        host_path: /srv/backups
    containers:
      - name: db
        image: docker://busybox:1.36
        command: [sh, -c, "exec httpd -f -p 8080 -h /data"]
        volumes:
          - name: db-data
            path: /data
          - name: db-backups
            path: /backups
            read_only: true
        files:
          - path: /etc/db/password
            content: "{{ db_password }}"
            mode: "0400"
            owner: "1000:1000"

- name: Remove that pod and its volume (the host directory is kept)
  hyper.pods.hyper_pod:
    name: db
    state: absent
    volumes_purge: true

- name: A pod and its service in one task (the haproxy container is added)
  hyper.pods.hyper_pod:
    name: web
    memory: 256
    containers:
      - name: httpd
        image: docker://busybox:1.36
        command: [httpd, -f, -p, "8080"]
    service_image: oci:/var/lib/hyper/local-images/oci:haproxy
    services:
      - name: web
        address: 10.96.0.10
        port: 80
        backends:
          - {address: 127.0.0.1, port: 8080}
"""

RETURN = r"""
actions:
  description:
    - What was done (or would be done in check mode), in order.
    - Among V(create), V(recreate), V(start), V(stop), V(restart), V(remove), V(update_labels),
      V(update_ports), V(update_restart) (O(restart_policy) or O(autostart) changed), V(sync_ports) and V(purge_volumes).
    - "A container changed in the running VM is one action naming it - V(replace container NAME: REASONS)
      (for example V(replace container web: env changed)), V(add container NAME), V(remove container NAME),
      or V(reorder containers) when only their order changed."
  returned: always
  type: list
  elements: str
  sample: [create, start]
container_changes:
  description:
    - The containers changed (or to be changed, in check mode) in the running VM, removals first.
  returned: when only the containers of a running pod changed
  type: list
  elements: dict
  contains:
    name:
      description: The container.
      type: str
    action:
      description: V(add), V(replace) or V(remove).
      type: str
    reasons:
      description: What of the container changed (V(image changed), V(env changed) ...), for V(replace).
      type: list
      elements: str
  sample:
    - {name: web, action: replace, reasons: [env changed]}
recreate_reasons:
  description:
    - Why an existing pod's VM was (or would be, in check mode) recreated, one phrase each - V(memory changed),
      V(recreate was asked for), V(containers changed, no free PCIe hot-plug slot ...) and so on.
  returned: when the VM of an existing pod is recreated
  type: list
  elements: str
  sample: [memory changed]
volumes_removed:
  description:
    - The volume files deleted (or to be deleted, in check mode) by O(volumes_purge=true).
  returned: when volumes were purged
  type: list
  elements: str
  sample: [/var/lib/hyper/volumes/data.qcow2]
crashes:
  description:
    - The crashes the pod had since the previous M(hyper.pods.hyper_pod) task (from its event journal, see
      RV(hyper.pods.hyper_pod_info#module:pods[].events)), with the restart attempts of the host service. The task
      also warns with libvirt's reason and the attempts.
    - A task whose pod crashed 3 times or more since the previous task, the last less than 120 s ago, and not
      brought up by a restart since, fails with a message naming the crash (unless it makes a new VM); a task that fails on a pod that crashed says so
      in its message, with this summary as C(crashes).
  returned: when the pod crashed since the previous task
  type: dict
  contains:
    count:
      description: How many times the VM ended with a failure (C(crashed) events).
      type: int
    reasons:
      description: libvirt's reasons, among C(crashed) (a guest panic) and C(failed) (QEMU killed or dead).
      type: list
      elements: str
    first:
      description: Time of the first crash, in seconds since the epoch.
      type: float
    last:
      description: Time of the last crash, in seconds since the epoch.
      type: float
    last_reason:
      description: libvirt's reason of the last crash.
      type: str
    last_action:
      description: What the host service did after the last crash and why.
      type: str
    restart_attempts:
      description: The highest restart attempt of the host service since the previous task (0 when none).
      type: int
    restarts:
      description: Restarts that brought the pod up.
      type: int
    restarts_failed:
      description: Restarts that failed; RV(crashes.last_error) is the last one's error.
      type: int
    last_error:
      description: The error of the last failed restart.
      type: str
      returned: when a restart failed
    events:
      description: The journal's C(crashed), C(restarted) and C(restart_failed) entries, oldest first, at most 20.
      type: list
      elements: dict
  sample: {count: 1, reasons: [failed], last_reason: failed, restart_attempts: 1, restarts: 1, restarts_failed: 0}
pod:
  description:
    - The pod after the task. Empty when it is absent.
    - In check mode, the pod as the task would leave it (container states predicted, no VM id for a new VM).
  returned: always
  type: dict
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
start:
  description:
    - How a new VM of the pod was started, V(pool) (a ready VM of a M(hyper.pods.hyper_pool) pool of the pod's template
      was claimed and given the pod) or V(cold) (a VM booted for it). See C(docs/pool.md).
  returned: when the task made and started a new VM
  type: str
  sample: pool
start_reason:
  description:
    - Why, for example V(VM hyper-3f9c2a1b of pool small), V(no warm pool VM on this host), or why the pod cannot
      start from a pre-booted VM (host directory shares, kernel_args); a pool VM that failed is named and removed, and the
      pod booted cold.
  returned: when the task made and started a new VM
  type: str
  sample: VM hyper-3f9c2a1b of pool small
timings:
  description:
    - Seconds from starting the VM until its guest agent answered and until every container ran.
    - From a pool VM, from its resume.
    - C(boot_slot_wait) is the wait for one of the host's boot slots before the VM started; C(pod_booted)
      (a pod with a config disk) when the guest said it had carried out its boot, before O(wait_settle).
    - C(containers_changed) is how long a change of containers in the running VM took (RV(container_changes)).
  returned: when the pod was started, or its containers changed in place
  type: dict
  sample: {boot_slot_wait: 0.0, agent_ready: 3.1, pod_booted: 3.3, containers_running: 4.0}
step:
  description: The step that failed, such as V(waiting for the guest agent).
  returned: failure while starting a pod
  type: str
  sample: waiting for the containers to run
console_tail:
  description: Last lines of the guest's serial console.
  returned: failure while starting a pod
  type: list
  elements: str
  sample: ["hyper-init: 1.23 switch-root"]
log_tail:
  description: Last lines of the failing container's log.
  returned: failure of a container while starting a pod
  type: list
  elements: str
  sample: ["httpd: bind: Address in use"]
services:
  description: The pod's services after the task, as M(hyper.pods.hyper_service) returns them.
  returned: when O(services) is given, unless O(state=absent) or O(state=stopped)
  type: list
  elements: dict
services_applied:
  description: Whether the services were applied to the running pod (false in check mode and for a pod that does not run).
  returned: when O(services) is given, unless O(state=absent) or O(state=stopped)
  type: bool
service_actions:
  description: What was done to the services, as RV(hyper.pods.hyper_service#module:actions).
  returned: when O(services) is given and the pod runs
  type: list
  elements: str
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.crashes import with_crash_report  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.args import REGISTRY_AUTH_SPEC  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.services import ensure_pod_with_services  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.args import SERVICE_OPTIONS  # noqa: E402

CONTAINER_OPTIONS = {
    "name": {"type": "str", "required": True},
    "image": {"type": "str", "required": True},
    "command": {"type": "list", "elements": "str"},
    "entrypoint": {"type": "list", "elements": "str"},
    # A dict keeps its values as given, so the library can refuse a non-string with a clear message.
    # no_log: env carries secrets; Ansible then masks every value everywhere in the result.
    "env": {"type": "dict", "no_log": True},
    "workdir": {"type": "str"},
    "user": {"type": "str"},
    "restart_policy": {"type": "str", "choices": ["never", "on-failure", "always"], "default": "never"},
    "stop_signal": {"type": "str", "default": "SIGTERM"},
    "stop_timeout": {"type": "int", "default": 10},
    "volumes": {
        "type": "list",
        "elements": "dict",
        "options": {"name": {"type": "str", "required": True}, "path": {"type": "str", "required": True}, "read_only": {"type": "bool", "default": False}},
    },
    "files": {
        "type": "list",
        "elements": "dict",
        "options": {
            "path": {"type": "str", "required": True},
            # no_log: the content may be a secret.
            "content": {"type": "str", "no_log": True},
            "src": {"type": "path"},
            # raw: "0640" as a string, or YAML's octal 0640 as an int; the library checks both.
            "mode": {"type": "raw", "default": "0644"},
            "owner": {"type": "str", "default": "0:0"},
        },
        "mutually_exclusive": [("content", "src")],
        "required_one_of": [("content", "src")],
    },
    # As docker_container and podman_container name them; no defaults: the library checks them (pod/container_options.py).
    "cpus": {"type": "float"},
    "memory": {"type": "raw"},
    "pids_limit": {"type": "int"},
    "cap_add": {"type": "list", "elements": "str"},
    "cap_drop": {"type": "list", "elements": "str"},
    "read_only": {"type": "bool"},
    "no_new_privileges": {"type": "bool"},
    "ulimits": {"type": "list", "elements": "raw"},
    "sysctls": {"type": "dict"},
    "tmpfs": {"type": "list", "elements": "raw"},
    "labels": {"type": "dict"},
    # Read on the controller by the action plugin, which merges it into env and drops it.
    "env_file": {"type": "path"},
    "hostname": {"type": "str"},
    "healthcheck": {
        "type": "dict",
        "options": {
            "test": {"type": "raw", "required": True},
            "interval": {"type": "raw"},
            "timeout": {"type": "raw"},
            "retries": {"type": "int"},
            "start_period": {"type": "raw"},
            "failure_action": {"type": "str", "choices": ["none", "restart"]},
        },
    },
}

ARGUMENT_SPEC = with_common_args(
    {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "started", "stopped", "restarted", "absent"], "default": "started"},
        # No defaults here: an option left out is not compared with the existing pod.
        "vcpus": {"type": "int"},
        "memory": {"type": "int"},
        "labels": {"type": "dict"},
        "restart_policy": {"type": "str", "choices": ["never", "on-failure", "always"]},
        "autostart": {"type": "bool"},
        "scratch_size": {"type": "str"},
        "log_size": {"type": "str"},
        "hostname": {"type": "str"},
        "guest_image": {"type": "str"},
        "kernel": {"type": "path"},
        "initrd": {"type": "path"},
        "kernel_args": {"type": "str"},
        "containers": {"type": "list", "elements": "dict", "options": CONTAINER_OPTIONS},
        "volumes": {
            "type": "list",
            "elements": "dict",
            "options": {
                "name": {"type": "str", "required": True},
                "size": {"type": "str"},
                "format": {"type": "str", "choices": ["qcow2", "raw"]},
                "host_path": {"type": "path"},
            },
            "mutually_exclusive": [("size", "host_path"), ("format", "host_path")],
        },
        "volumes_purge": {"type": "bool", "default": False},
        # Items are names or {name, address} mappings; the library checks them (network.normalise_networks).
        "networks": {"type": "list", "elements": "raw"},
        "ports": {
            "type": "list",
            "elements": "dict",
            "options": {
                "host_port": {"type": "raw", "required": True},
                "pod_port": {"type": "raw"},
                "protocol": {"type": "str", "choices": ["tcp", "udp"], "default": "tcp"},
                "host_ip": {"type": "str"},
            },
        },
        "dns": {"type": "list", "elements": "str"},
        "dns_search": {"type": "list", "elements": "str"},
        "dns_options": {"type": "list", "elements": "str"},
        "default_transport": {"type": "str", "default": "docker://"},
        "pull": {"type": "str", "choices": ["missing", "always", "never"], "default": "missing"},
        **REGISTRY_AUTH_SPEC,
        "wait": {"type": "bool", "default": True},
        "wait_timeout": {"type": "int", "default": 120},
        "wait_settle": {"type": "float", "default": 0.2},
        "wait_healthy": {"type": "bool", "default": False},
        "wait_healthy_timeout": {"type": "int", "default": 120},
        "recreate": {"type": "bool", "default": False},
        "stop_timeout": {"type": "int", "default": 30},
        "services": {"type": "list", "elements": "dict", "options": SERVICE_OPTIONS},
        "service_image": {"type": "str", "default": "oci:/var/lib/hyper/local-images/oci:haproxy"},
        "service_template": {"type": "str"},
        "service_config": {"type": "str"},
        "services_hash": {"type": "str"},
    },
    host=True,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_together=[("kernel", "initrd")],
        mutually_exclusive=[("guest_image", "kernel"), ("guest_image", "initrd")],
        supports_check_mode=True,
    )

    def _ensure(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        # The crashes the pod had since the last task are reported (or fail the task: hostd/crashes.py).
        return with_crash_report(params, check_mode, lambda: ensure_pod_with_services(params, check_mode, module._diff))

    run_module(module, _ensure)


if __name__ == "__main__":
    main()
