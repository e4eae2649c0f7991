# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A Kubernetes Pod manifest (or the pod template of a workload) as hyper_pod options: the from_kube filter.

Kubernetes' ``command`` is the image's entrypoint and ``args`` its command, which is what
hyper_pod's ``entrypoint`` and ``command`` are. Per-container resources size the pod's VM (the
guest's own 128 MiB plus the containers' memory, the sum of their CPUs); their limits are
enforced per container inside it (``cpus``, ``memory``: _kube_container.py). ``emptyDir`` volumes become disk volumes named after the pod (disk
volumes are named on the host), ``hostPath`` directories become host directories.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.plugin_utils._convert import (
    MIN_MEMORY_MIB,
    VOLUME_NAME,
    ConversionError,
    Converter,
    argv,
    items,
    mapping,
    mebibytes,
    pod_name,
    port_number,
    quantity,
    string_map,
    text,
    volume_size,
)
from ansible_collections.hyper.pods.plugins.plugin_utils._kube_container import HARDENING_FIELDS, hardening, limits

DEFAULT_EMPTYDIR_SIZE = "1G"
RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "never"}
PULL = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}
# kind → path of the pod template in the object, and the fields of its spec besides the template.
WORKLOADS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "Deployment": (
        ("spec", "template"),
        {
            "replicas": "is not honoured: this is one pod on one host (loop over the filter's result for more)",
            "strategy": "has no meaning for one pod: a change of the pod's options replaces its VM",
            "minReadySeconds": "has no meaning for one pod",
            "revisionHistoryLimit": "has no meaning for one pod",
            "progressDeadlineSeconds": "has no meaning for one pod; hyper_pod's wait_timeout bounds the start",
            "paused": "has no meaning for one pod",
        },
    ),
    "ReplicaSet": (("spec", "template"), {"replicas": "is not honoured: this is one pod on one host", "minReadySeconds": "has no meaning for one pod"}),
    "StatefulSet": (
        ("spec", "template"),
        {
            "replicas": "is not honoured: this is one pod on one host",
            "serviceName": "has no meaning here: there is no cluster DNS",
            "podManagementPolicy": "has no meaning for one pod",
            "updateStrategy": "has no meaning for one pod: a change of the pod's options replaces its VM",
            "revisionHistoryLimit": "has no meaning for one pod",
            "minReadySeconds": "has no meaning for one pod",
            "persistentVolumeClaimRetentionPolicy": "has no meaning here: disk volumes are kept unless volumes_purge=true",
            "ordinals": "has no meaning for one pod",
        },
    ),
    "DaemonSet": (("spec", "template"), {"updateStrategy": "has no meaning for one pod", "minReadySeconds": "has no meaning for one pod"}),
    "Job": (
        ("spec", "template"),
        {
            "completions": "is not honoured: the pod runs its containers once, by their restart policy",
            "parallelism": "is not honoured: this is one pod",
            "backoffLimit": "is not honoured: restart_policy on-failure restarts without a limit",
            "activeDeadlineSeconds": "is not honoured: nothing stops the pod after a deadline",
            "ttlSecondsAfterFinished": "is not honoured: the pod stays until state=absent",
            "completionMode": "has no meaning for one pod",
            "suspend": "is not honoured",
            "podFailurePolicy": "is not honoured",
            "backoffLimitPerIndex": "is not honoured",
            "maxFailedIndexes": "is not honoured",
            "podReplacementPolicy": "is not honoured",
            "successPolicy": "is not honoured",
            "managedBy": "has no meaning here",
        },
    ),
}
WORKLOAD_REFUSED = {"volumeClaimTemplates": "persistent volume claims have no hyper_pod equivalent: declare disk volumes with hyper_pod's volumes"}
# Filled in by the API server (kubectl get -o yaml); they describe an object, not the pod to run.
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
METADATA_WARNED = {
    "namespace": "has no meaning on a hyper host: pod names are unique per host",
    "annotations": "are not kept: hyper_pod has labels only",
    "generateName": "is not honoured: the pod is named by metadata.name or the name argument",
    "ownerReferences": "has no meaning on a hyper host",
    "finalizers": "has no meaning on a hyper host",
}

POD_KNOWN = ("containers", "volumes", "restartPolicy", "hostname", "dnsConfig", "dnsPolicy", "securityContext", "terminationGracePeriodSeconds")
POD_WARNED = {
    "nodeName": "has no meaning: the pod runs on the host the task runs on",
    "nodeSelector": "has no meaning: the pod runs on the host the task runs on",
    "affinity": "has no meaning: the pod runs on the host the task runs on",
    "tolerations": "has no meaning: the pod runs on the host the task runs on",
    "topologySpreadConstraints": "has no meaning: the pod runs on the host the task runs on",
    "schedulerName": "has no meaning: there is no scheduler",
    "priority": "has no meaning: there is no scheduler",
    "priorityClassName": "has no meaning: there is no scheduler",
    "preemptionPolicy": "has no meaning: there is no scheduler",
    "serviceAccount": "has no meaning: there is no API server to authenticate to",
    "serviceAccountName": "has no meaning: there is no API server to authenticate to",
    "automountServiceAccountToken": "has no meaning: there is no service account token",
    "enableServiceLinks": "has no meaning: there are no Kubernetes services (see hyper_pod's services)",
    "imagePullSecrets": "are not used: skopeo on the hyper host pulls with its own credentials (auth.json)",
    "runtimeClassName": "has no meaning: every hyper pod is a VM",
    "overhead": "has no meaning: the VM is sized from the containers' resources",
    "readinessGates": "have no meaning: there is no endpoint controller",
    "schedulingGates": "have no meaning: there is no scheduler",
    "subdomain": "has no meaning: there is no cluster DNS",
    "setHostnameAsFQDN": "has no meaning: there is no cluster DNS",
}
POD_REFUSED = {
    "initContainers": "hyper_pod has no init containers (containers start in order but are not waited for): run the init step as a task first",
    "ephemeralContainers": "hyper_pod has no ephemeral containers: use hyper.pods.hyper_exec",
    "hostNetwork": "a hyper pod is a VM with a network of its own; map host ports with ports instead",
    "hostPID": "a hyper pod is a VM: the host's processes are not visible in it",
    "hostIPC": "a hyper pod is a VM: the host's IPC namespace is not shared with it",
    "hostUsers": "a hyper pod is a VM: user namespaces of the host do not apply",
    "shareProcessNamespace": "hyper_pod's containers have separate PID namespaces",
    "hostAliases": "hyper_pod has no option for /etc/hosts entries: inject the file with containers[].files",
    "activeDeadlineSeconds": "hyper_pod does not stop a pod after a deadline",
    "os": "hyper pods run Linux guests only",
    "resourceClaims": "hyper_pod has no dynamic resources",
    "resources": "pod-level resources have no hyper_pod equivalent: give the containers' resources",
}
CONTAINER_KNOWN = ("name", "image", "command", "args", "env", "workingDir", "ports", "volumeMounts", "resources", "securityContext", "imagePullPolicy")
CONTAINER_WARNED = {
    "livenessProbe": "is not run: hyper pods have no probes; restart_policy restarts a container that exits, not one that hangs",
    "readinessProbe": "is not run: hyper pods have no probes, and no endpoints to take a container out of",
    "startupProbe": "is not run: hyper pods have no probes",
    "terminationMessagePath": "is not used: hyper_pod_info shows the container's log tail",
    "terminationMessagePolicy": "is not used: hyper_pod_info shows the container's log tail",
    "stdin": "is not honoured: containers have no attached stdin (use hyper_exec with stdin)",
    "stdinOnce": "is not honoured: containers have no attached stdin",
    "tty": "is not honoured: containers have no terminal; their output goes to the log",
    "resizePolicy": "has no meaning: a change of resources replaces the VM",
}
CONTAINER_REFUSED = {
    "envFrom": "there are no ConfigMaps or Secrets on a hyper host: give the variables in env",
    "lifecycle": "hyper_pod runs no postStart or preStop hooks (stop_signal and stop_timeout are what it has)",
    "volumeDevices": "hyper_pod has no raw block devices for containers: use a disk volume",
    "restartPolicy": "container-level restart policies belong to init containers, which hyper_pod does not have",
    "workingDirectory": "the field is workingDir",
}
SECURITY_POD_KNOWN = ("runAsUser", "runAsGroup", "runAsNonRoot")
SECURITY_CONTAINER_KNOWN = ("runAsUser", "runAsGroup", "runAsNonRoot", *HARDENING_FIELDS)
SECURITY_REFUSED = {
    "privileged": "hyper_pod has no privileged containers",
    "capabilities": "is a container's field: give it in the container's securityContext",
    "readOnlyRootFilesystem": "is a container's field: give it in the container's securityContext",
    "allowPrivilegeEscalation": "is a container's field: give it in the container's securityContext",
    "seccompProfile": "hyper_pod has no seccomp option",
    "appArmorProfile": "hyper_pod has no AppArmor option",
    "seLinuxOptions": "hyper_pod has no SELinux option",
    "procMount": "hyper_pod has no procMount option",
    "windowsOptions": "hyper pods run Linux guests only",
    "fsGroup": "hyper_pod does not change the group of volumes",
    "fsGroupChangePolicy": "hyper_pod does not change the group of volumes",
    "supplementalGroups": "hyper_pod's user option takes one group only",
    "supplementalGroupsPolicy": "hyper_pod's user option takes one group only",
    "sysctls": "hyper_pod has no sysctl option",
    "seLinuxChangePolicy": "hyper_pod has no SELinux option",
}
PORT_KNOWN = ("containerPort", "hostPort", "protocol", "hostIP", "name")
MOUNT_KNOWN = ("name", "mountPath", "readOnly")
MOUNT_REFUSED = {
    "subPath": "hyper_pod mounts a whole volume: use a volume of its own",
    "subPathExpr": "hyper_pod mounts a whole volume: use a volume of its own",
    "mountPropagation": "hyper_pod has no mount propagation option",
    "recursiveReadOnly": "hyper_pod has no recursive read-only option",
}
VOLUME_SOURCES_REFUSED = {
    "configMap": "there are no ConfigMaps on a hyper host: inject the files with containers[].files",
    "secret": "there are no Secrets on a hyper host: inject the files with containers[].files (their content is kept root-only)",
    "persistentVolumeClaim": "there are no persistent volume claims: use a disk volume (hyper_pod's volumes with a size)",
    "projected": "there are no projected volumes: inject the files with containers[].files",
    "downwardAPI": "there is no downward API: inject the files with containers[].files",
    "ephemeral": "there are no generic ephemeral volumes: use a disk volume",
    "image": "image volumes are not supported: use another container",
}


def _path(obj: Mapping[str, Any], path: tuple[str, ...], where: str) -> Mapping[str, Any]:
    value: Any = obj
    for key in path:
        value = mapping(value, where).get(key)
        where = f"{where}.{key}" if where else key
    return mapping(value, where)


def _resources(conv: Converter, value: object, where: str) -> tuple[float, float]:
    """(CPUs, memory in bytes) of one container: its limits, else its requests."""
    resources = mapping(value, where)
    conv.check_fields(resources, where, ("limits", "requests"), {"claims": "has no meaning: hyper_pod has no dynamic resources"}, {})
    cpu = memory = 0.0
    for kind in ("requests", "limits"):
        for name, amount in mapping(resources.get(kind) or {}, f"{where}.{kind}").items():
            key = f"{where}.{kind}.{name}"
            if name == "cpu":
                cpu = quantity(amount, key)
            elif name == "memory":
                memory = quantity(amount, key)
            elif name == "ephemeral-storage":
                conv.warn(key, "is not enforced: writable layers go to the pod's overlay")
            elif str(name).startswith("hugepages-"):
                raise ConversionError(key, "hyper_pod has no huge pages option")
            else:
                raise ConversionError(key, "hyper_pod has no devices or extended resources (GPUs and the like)")
    return cpu, memory


def _user(conv: Converter, pod_security: Mapping[str, Any], value: object, where: str) -> Optional[str]:
    security = mapping(value, where) if value is not None else {}
    conv.check_fields(security, where, SECURITY_CONTAINER_KNOWN, {}, SECURITY_REFUSED)
    merged = {**pod_security, **{k: v for k, v in security.items() if v is not None}}
    uid, gid = merged.get("runAsUser"), merged.get("runAsGroup")
    for key, number in (("runAsUser", uid), ("runAsGroup", gid)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 0):
            raise ConversionError(f"{where}.{key}", f"must be a non-negative integer, not {number!r}")
    if merged.get("runAsNonRoot") and not uid:
        raise ConversionError(
            f"{where}.runAsNonRoot", "needs runAsUser with a non-zero UID here: hyper_pod cannot check the image's own user before the pod runs"
        )
    if gid is not None and uid is None:
        raise ConversionError(f"{where}.runAsGroup", "needs runAsUser as well: hyper_pod's user is UID[:GID]")
    if uid is None:
        return None
    return f"{uid}:{gid}" if gid is not None else str(uid)


def _ports(conv: Converter, value: object, where: str) -> list[dict[str, Any]]:
    result = []
    for index, item in enumerate(items(value, where)):
        here = f"{where}[{index}]"
        port = mapping(item, here)
        conv.check_fields(port, here, PORT_KNOWN, {}, {})
        pod_port = port_number(port.get("containerPort"), f"{here}.containerPort")
        protocol = str(port.get("protocol") or "TCP")
        if protocol not in ("TCP", "UDP"):
            raise ConversionError(f"{here}.protocol", f"{protocol!r}: hyper_pod maps TCP and UDP ports only")
        if port.get("hostPort") is None:
            # Informational in Kubernetes too: the port answers on the pod's own address.
            continue
        mapped: dict[str, Any] = {"host_port": port_number(port.get("hostPort"), f"{here}.hostPort"), "pod_port": pod_port, "protocol": protocol.lower()}
        if port.get("hostIP"):
            mapped["host_ip"] = text(port.get("hostIP"), f"{here}.hostIP")
        result.append(mapped)
    return result


def _env(value: object, where: str) -> Optional[dict[str, str]]:
    env: dict[str, str] = {}
    for index, item in enumerate(items(value, where)):
        here = f"{where}[{index}]"
        var = mapping(item, here)
        name = text(var.get("name"), f"{here}.name")
        if var.get("valueFrom") is not None:
            raise ConversionError(f"{here}.valueFrom", f"({name}) there are no ConfigMaps, Secrets or downward API on a hyper host: give the value")
        unknown = sorted(set(var) - {"name", "value", "valueFrom"})
        if unknown:
            raise ConversionError(f"{here}.{unknown[0]}", "is not a field of an environment variable")
        val = var.get("value", "")
        if not isinstance(val, str):
            raise ConversionError(f"{here}.value", f"({name}) must be a string, not {type(val).__name__}")
        env[name] = val
    return env or None


def _volumes(conv: Converter, pod: str, value: object, where: str, default_size: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """hyper_pod volumes, and the Kubernetes volume name → hyper_pod volume name."""
    volumes: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, item in enumerate(items(value, where)):
        here = f"{where}[{index}]"
        volume = mapping(item, here)
        name = text(volume.get("name"), f"{here}.name")
        sources = [key for key in volume if key != "name" and volume[key] is not None]
        if len(sources) != 1:
            raise ConversionError(here, f"volume {name} must have exactly one source, it has {sources or 'none'}")
        (source,) = sources
        spec = volume[source]
        here = f"{here}.{source}"
        if source == "emptyDir":
            empty = mapping(spec or {}, here)
            conv.check_fields(empty, here, ("sizeLimit", "medium"), {}, {})
            if empty.get("medium") == "Memory":
                conv.warn(f"{here}.medium", "Memory: the volume is a disk volume, not a tmpfs (hyper_pod has no memory volumes)")
            elif empty.get("medium"):
                raise ConversionError(f"{here}.medium", f"{empty.get('medium')!r} is not a medium hyper_pod can give (only a disk)")
            disk = f"{pod}-{name}"
            if not VOLUME_NAME.fullmatch(disk):
                raise ConversionError(
                    f"{where}[{index}].name", f"the disk volume {disk!r} (pod name, '-', volume name) is not a valid volume name or is too long"
                )
            size = volume_size(quantity(empty["sizeLimit"], f"{here}.sizeLimit")) if empty.get("sizeLimit") is not None else default_size
            conv.warn(
                here,
                f"volume {name} is the disk volume {disk} of {size} on the hyper host; unlike an emptyDir it is kept when the pod is removed,"
                " unless the removal has volumes_purge=true",
            )
            volumes.append({"name": disk, "size": size})
            names[name] = disk
        elif source == "hostPath":
            host = mapping(spec, here)
            conv.check_fields(host, here, ("path", "type"), {}, {})
            path = text(host.get("path"), f"{here}.path")
            kind = host.get("type") or ""
            if kind in ("File", "FileOrCreate", "Socket", "CharDevice", "BlockDevice"):
                raise ConversionError(f"{here}.type", f"{kind}: hyper_pod shares host directories only (virtio-fs)")
            if kind not in ("", "Directory", "DirectoryOrCreate"):
                raise ConversionError(f"{here}.type", f"{kind!r} is not a hostPath type")
            if kind == "DirectoryOrCreate":
                conv.warn(f"{here}.type", f"DirectoryOrCreate: hyper_pod does not create {path}; it must exist on the hyper host")
            volume_name = name if VOLUME_NAME.fullmatch(name) else ""
            if not volume_name:
                raise ConversionError(f"{where}[{index}].name", f"{name!r} is not a hyper_pod volume name")
            volumes.append({"name": volume_name, "host_path": path})
            names[name] = volume_name
        elif source in VOLUME_SOURCES_REFUSED:
            raise ConversionError(here, VOLUME_SOURCES_REFUSED[source])
        else:
            raise ConversionError(here, "is a volume source hyper_pod does not have (it has emptyDir as a disk volume, and hostPath directories)")
    return volumes, names


def _mounts(conv: Converter, value: object, where: str, names: Mapping[str, str]) -> list[dict[str, Any]]:
    mounts = []
    for index, item in enumerate(items(value, where)):
        here = f"{where}[{index}]"
        mount = mapping(item, here)
        conv.check_fields(mount, here, MOUNT_KNOWN, {}, MOUNT_REFUSED)
        name = text(mount.get("name"), f"{here}.name")
        if name not in names:
            raise ConversionError(f"{here}.name", f"{name!r} is not a volume of the pod (it has: {', '.join(names) or 'none'})")
        entry: dict[str, Any] = {"name": names[name], "path": text(mount.get("mountPath"), f"{here}.mountPath")}
        if mount.get("readOnly"):
            entry["read_only"] = True
        mounts.append(entry)
    return mounts


def _dns(conv: Converter, spec: Mapping[str, Any], options: dict[str, Any]) -> None:
    policy = spec.get("dnsPolicy")
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        conv.warn("spec.dnsPolicy", f"{policy}: there is no cluster DNS; the pod uses its network's name server (or dnsConfig)")
    elif policy not in (None, "Default", "None"):
        raise ConversionError("spec.dnsPolicy", f"{policy!r} is not a DNS policy")
    config = spec.get("dnsConfig")
    if config is None:
        return
    config = mapping(config, "spec.dnsConfig")
    conv.check_fields(config, "spec.dnsConfig", ("nameservers", "searches", "options"), {}, {})
    if config.get("nameservers"):
        options["dns"] = argv(config["nameservers"], "spec.dnsConfig.nameservers")
    if config.get("searches"):
        options["dns_search"] = argv(config["searches"], "spec.dnsConfig.searches")
    resolver = []
    for index, item in enumerate(items(config.get("options"), "spec.dnsConfig.options")):
        option = mapping(item, f"spec.dnsConfig.options[{index}]")
        name = text(option.get("name"), f"spec.dnsConfig.options[{index}].name")
        resolver.append(f"{name}:{option['value']}" if option.get("value") not in (None, "") else name)
    if resolver:
        options["dns_options"] = resolver


def from_kube(manifest: object, name: Optional[str] = None, strict: bool = False, emptydir_size: str = DEFAULT_EMPTYDIR_SIZE) -> dict[str, Any]:
    """hyper_pod options (and ``warnings`` when there are any) from a Pod or a workload with a pod template."""
    conv = Converter("from_kube", strict=strict)
    obj = mapping(manifest, "manifest")
    kind = obj.get("kind")
    if kind == "CronJob":
        raise ConversionError("kind", "CronJob: hyper_pod runs no schedules; convert its spec.jobTemplate (a Job) and schedule the task yourself")
    if kind != "Pod" and kind not in WORKLOADS:
        raise ConversionError("kind", f"{kind!r}: from_kube converts a Pod, or the pod template of a {', '.join(sorted(WORKLOADS))}")
    metadata = mapping(obj.get("metadata") or {}, "metadata")
    # status: what the API server reports (kubectl get -o yaml), not what to run.
    conv.check_fields(obj, "", ("apiVersion", "kind", "metadata", "spec", "status"), {}, {})
    conv.check_fields(metadata, "metadata", ("name", "labels", *SERVER_METADATA), METADATA_WARNED, {})
    if kind == "Pod":
        template: Mapping[str, Any] = obj
        template_where = ""
        template_meta: Mapping[str, Any] = {}
    else:
        path, warned = WORKLOADS[str(kind)]
        workload = mapping(obj.get("spec"), "spec")
        # One replica is what a hyper pod is; any other count is warned about.
        known = ("template", "selector", "replicas") if workload.get("replicas") == 1 else ("template", "selector")
        conv.check_fields(workload, "spec", known, warned, WORKLOAD_REFUSED)
        template = _path(obj, path, "")
        template_where = ".".join(path)
        template_meta = mapping(template.get("metadata") or {}, f"{template_where}.metadata")
        conv.check_fields(template_meta, f"{template_where}.metadata", ("name", "labels", *SERVER_METADATA), METADATA_WARNED, {})
    spec_where = f"{template_where}.spec".lstrip(".")
    spec = mapping(template.get("spec"), spec_where)

    pod = pod_name(name if name is not None else metadata.get("name") or template_meta.get("name"), "name" if name is not None else "metadata.name")
    options: dict[str, Any] = {"name": pod}
    labels = {
        **string_map(metadata.get("labels") or {}, "metadata.labels"),
        **string_map(template_meta.get("labels") or {}, f"{template_where}.metadata.labels"),
    }
    if labels:
        options["labels"] = labels

    conv.check_fields(spec, spec_where, POD_KNOWN, POD_WARNED, POD_REFUSED)
    restart = spec.get("restartPolicy") or "Always"
    if restart not in RESTART:
        raise ConversionError(f"{spec_where}.restartPolicy", f"{restart!r} is not Always, OnFailure or Never")
    if spec.get("hostname") is not None:
        options["hostname"] = text(spec.get("hostname"), f"{spec_where}.hostname")
    _dns(conv, spec, options)
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= 3600):
        raise ConversionError(f"{spec_where}.terminationGracePeriodSeconds", f"must be 0 to 3600 seconds, not {grace!r}")
    pod_security = mapping(spec.get("securityContext") or {}, f"{spec_where}.securityContext")
    conv.check_fields(pod_security, f"{spec_where}.securityContext", SECURITY_POD_KNOWN, {}, SECURITY_REFUSED)

    volumes, names = _volumes(conv, pod, spec.get("volumes"), f"{spec_where}.volumes", emptydir_size)
    if volumes:
        options["volumes"] = volumes
    containers: list[dict[str, Any]] = []
    ports: list[dict[str, Any]] = []
    cpus = memory = 0.0
    sized = False
    pulls = set()
    for index, item in enumerate(items(spec.get("containers"), f"{spec_where}.containers")):
        where = f"{spec_where}.containers[{index}]"
        source = mapping(item, where)
        conv.check_fields(source, where, CONTAINER_KNOWN, CONTAINER_WARNED, CONTAINER_REFUSED)
        container: dict[str, Any] = {"name": text(source.get("name"), f"{where}.name"), "image": text(source.get("image"), f"{where}.image")}
        where = f"{spec_where}.containers[{container['name']}]"
        entrypoint, command = argv(source.get("command"), f"{where}.command"), argv(source.get("args"), f"{where}.args")
        if entrypoint is not None:
            container["entrypoint"] = entrypoint
        if command is not None:
            container["command"] = command
        env = _env(source.get("env"), f"{where}.env")
        if env:
            container["env"] = env
        if source.get("workingDir") is not None:
            container["workdir"] = text(source.get("workingDir"), f"{where}.workingDir")
        user = _user(conv, pod_security, source.get("securityContext"), f"{where}.securityContext")
        if user is not None:
            container["user"] = user
        container.update(hardening(mapping(source.get("securityContext") or {}, f"{where}.securityContext"), f"{where}.securityContext"))
        container["restart_policy"] = RESTART[restart]
        if grace is not None:
            container["stop_timeout"] = grace
        mounts = _mounts(conv, source.get("volumeMounts"), f"{where}.volumeMounts", names)
        if mounts:
            container["volumes"] = mounts
        ports.extend(_ports(conv, source.get("ports"), f"{where}.ports"))
        if source.get("resources") is not None:
            cpu, mem = _resources(conv, source.get("resources"), f"{where}.resources")
            cpus, memory, sized = cpus + cpu, memory + mem, sized or bool(cpu or mem)
            container.update(limits(mapping(source.get("resources"), f"{where}.resources"), f"{where}.resources"))
        policy = source.get("imagePullPolicy")
        if policy is not None and policy not in PULL:
            raise ConversionError(f"{where}.imagePullPolicy", f"{policy!r} is not Always, IfNotPresent or Never")
        pulls.add(PULL.get(str(policy), "missing"))
        containers.append(container)
    if not containers:
        raise ConversionError(f"{spec_where}.containers", "a pod needs at least one container")
    options["containers"] = containers
    if ports:
        options["ports"] = ports
    if sized:
        if memory:
            options["memory"] = MIN_MEMORY_MIB + mebibytes(memory)
        options["vcpus"] = max(1, math.ceil(cpus - 1e-9))
        conv.warn(
            f"{spec_where}.containers[].resources",
            f"size the pod's VM ({options.get('memory', MIN_MEMORY_MIB)} MiB: the guest's {MIN_MEMORY_MIB} plus the containers';"
            f" {options['vcpus']} vCPUs); the limits are enforced per container inside it, the requests only size it",
        )
    if "always" in pulls:
        options["pull"] = "always"
    elif pulls == {"never"}:
        options["pull"] = "never"
    if "never" in pulls and len(pulls) > 1:
        # hyper_pod's pull is the pod's: Never of some containers only cannot be kept.
        conv.warn(f"{spec_where}.containers[].imagePullPolicy", "Never for some containers only: hyper_pod copies their images when not cached")
    if grace is not None:
        options["stop_timeout"] = grace
    if conv.warnings:
        options["warnings"] = conv.warnings
    return options
