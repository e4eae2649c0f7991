# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""from_kube on manifests shaped like the Kubernetes documentation's examples, and on what it must refuse."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.plugin_utils._convert import ConversionError, quantity
from ansible_collections.hyper.pods.plugins.plugin_utils._kube import from_kube

# https://kubernetes.io/docs/concepts/workloads/pods/ (pods/simple-pod.yaml)
NGINX_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: nginx
spec:
  containers:
  - name: nginx
    image: nginx:1.14.2
    ports:
    - containerPort: 80
"""

# https://kubernetes.io/docs/tasks/access-application-cluster/communicate-containers-same-pod-shared-volume/
TWO_CONTAINERS = """
apiVersion: v1
kind: Pod
metadata:
  name: two-containers
spec:
  restartPolicy: Never
  volumes:
  - name: shared-data
    emptyDir: {}
  containers:
  - name: nginx-container
    image: nginx
    volumeMounts:
    - name: shared-data
      mountPath: /usr/share/nginx/html
  - name: debian-container
    image: debian
    volumeMounts:
    - name: shared-data
      mountPath: /pod-data
    command: ["/bin/sh"]
    args: ["-c", "echo Hello from the debian container > /pod-data/index.html"]
"""

# The shapes of https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
# and .../assign-memory-resource/ in one pod.
PROBES_AND_RESOURCES = """
apiVersion: v1
kind: Pod
metadata:
  labels:
    test: liveness
  name: goproxy
spec:
  containers:
  - name: goproxy
    image: registry.k8s.io/goproxy:0.1
    ports:
    - containerPort: 8080
      hostPort: 8080
    readinessProbe:
      tcpSocket:
        port: 8080
      initialDelaySeconds: 15
      periodSeconds: 10
    livenessProbe:
      tcpSocket:
        port: 8080
      initialDelaySeconds: 15
      periodSeconds: 10
    resources:
      requests:
        memory: "100Mi"
        cpu: "250m"
      limits:
        memory: "200Mi"
        cpu: "500m"
  - name: memory-demo-ctr
    image: polinux/stress
    resources:
      requests:
        memory: "100Mi"
    command: ["stress"]
    args: ["--vm", "1", "--vm-bytes", "150M", "--vm-hang", "1"]
    env:
    - name: DEMO_GREETING
      value: "Hello from the environment"
"""

# https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ (controllers/nginx-deployment.yaml)
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels:
    app: nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
"""

# https://kubernetes.io/docs/concepts/workloads/controllers/job/ (controllers/job.yaml)
JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: perl:5.34.0
        command: ["perl",  "-Mbignum=bpi", "-wle", "print bpi(2000)"]
      restartPolicy: Never
  backoffLimit: 4
"""


def convert(text: str, **kwargs: Any) -> dict[str, Any]:
    options = from_kube(yaml.safe_load(text), **kwargs)
    # What the filter returns is what hyper_pod takes.
    normalise_pod({key: value for key, value in options.items() if key not in ("warnings", "pull", "stop_timeout")})
    return options


def test_nginx_pod() -> None:
    assert convert(NGINX_POD) == {"name": "nginx", "containers": [{"name": "nginx", "image": "nginx:1.14.2", "restart_policy": "always"}]}


def test_two_containers_share_an_emptydir() -> None:
    options = convert(TWO_CONTAINERS)
    warnings = options.pop("warnings")
    assert options == {
        "name": "two-containers",
        "volumes": [{"name": "two-containers-shared-data", "size": "1G"}],
        "containers": [
            {
                "name": "nginx-container",
                "image": "nginx",
                "restart_policy": "never",
                "volumes": [{"name": "two-containers-shared-data", "path": "/usr/share/nginx/html"}],
            },
            {
                "name": "debian-container",
                "image": "debian",
                "entrypoint": ["/bin/sh"],
                "command": ["-c", "echo Hello from the debian container > /pod-data/index.html"],
                "restart_policy": "never",
                "volumes": [{"name": "two-containers-shared-data", "path": "/pod-data"}],
            },
        ],
    }
    assert len(warnings) == 1 and "spec.volumes[0].emptyDir" in warnings[0] and "volumes_purge=true" in warnings[0]


def test_probes_and_resources() -> None:
    options = convert(PROBES_AND_RESOURCES)
    warnings = options.pop("warnings")
    assert options["memory"] == 128 + 200 + 100
    assert options["vcpus"] == 1
    assert options["labels"] == {"test": "liveness"}
    assert options["ports"] == [{"host_port": 8080, "pod_port": 8080, "protocol": "tcp"}]
    stress = options["containers"][1]
    assert stress["entrypoint"] == ["stress"] and stress["command"][0] == "--vm"
    assert stress["env"] == {"DEMO_GREETING": "Hello from the environment"}
    assert [w.split(":")[0] for w in warnings] == [
        "from_kube spec.containers[0].readinessProbe",
        "from_kube spec.containers[0].livenessProbe",
        "from_kube spec.containers[].resources",
    ]
    assert "428 MiB" in warnings[2] and "limits are enforced per container" in warnings[2]
    # The limits are the containers' own (cgroup limits in the guest); requests only size the VM.
    assert (options["containers"][0]["cpus"], options["containers"][0]["memory"]) == (0.5, f"{200 << 20}b")
    assert "cpus" not in stress and "memory" not in stress


def test_deployment_template() -> None:
    options = convert(DEPLOYMENT)
    assert options["name"] == "nginx-deployment"
    assert options["labels"] == {"app": "nginx"}
    assert options["containers"] == [{"name": "nginx", "image": "nginx:1.14.2", "restart_policy": "always"}]
    assert options["warnings"] == ["from_kube spec.replicas: is not honoured: this is one pod on one host (loop over the filter's result for more)"]


def test_deployment_of_one_replica_has_no_warning() -> None:
    manifest = yaml.safe_load(DEPLOYMENT)
    manifest["spec"]["replicas"] = 1
    assert "warnings" not in from_kube(manifest)


def test_job() -> None:
    options = convert(JOB)
    assert options["containers"][0]["restart_policy"] == "never"
    assert options["containers"][0]["entrypoint"] == ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]
    assert options["warnings"] == ["from_kube spec.backoffLimit: is not honoured: restart_policy on-failure restarts without a limit"]


def test_strict_makes_warnings_errors() -> None:
    with pytest.raises(ConversionError, match=r"spec.replicas: is not honoured.*strict=true"):
        from_kube(yaml.safe_load(DEPLOYMENT), strict=True)


def test_name_security_dns_hostpath_grace() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web.example.com", "namespace": "default", "uid": "0b1c", "resourceVersion": "7"},
        "spec": {
            "hostname": "web",
            "terminationGracePeriodSeconds": 5,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["192.0.2.1"],
                "searches": ["ns1.svc.cluster-domain.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
            },
            "volumes": [{"name": "logs", "hostPath": {"path": "/srv/logs", "type": "Directory"}}],
            "containers": [
                {
                    "name": "app",
                    "image": "docker://busybox:1.36",
                    "imagePullPolicy": "Always",
                    "workingDir": "/srv",
                    "securityContext": {"runAsUser": 2000},
                    "ports": [{"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "192.0.2.7"}],
                    "volumeMounts": [{"name": "logs", "mountPath": "/logs", "readOnly": True}],
                }
            ],
        },
        "status": {"phase": "Running"},
    }
    options = from_kube(manifest, name="web")
    assert options.pop("warnings") == ["from_kube metadata.namespace: has no meaning on a hyper host: pod names are unique per host"]
    assert options == {
        "name": "web",
        "hostname": "web",
        "dns": ["192.0.2.1"],
        "dns_search": ["ns1.svc.cluster-domain.example"],
        "dns_options": ["ndots:2", "edns0"],
        "volumes": [{"name": "logs", "host_path": "/srv/logs"}],
        "containers": [
            {
                "name": "app",
                "image": "docker://busybox:1.36",
                "workdir": "/srv",
                "user": "2000:3000",
                "restart_policy": "always",
                "stop_timeout": 5,
                "volumes": [{"name": "logs", "path": "/logs", "read_only": True}],
            }
        ],
        "ports": [{"host_port": 5353, "pod_port": 53, "protocol": "udp", "host_ip": "192.0.2.7"}],
        "pull": "always",
        "stop_timeout": 5,
    }
    normalise_pod({key: value for key, value in options.items() if key not in ("pull", "stop_timeout")} | {"stop_timeout": 5})


def _pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox", **(container or {})}], **spec}}


@pytest.mark.parametrize(
    ("manifest", "where", "why"),
    [
        ({"kind": "Service", "metadata": {"name": "s"}}, "kind", "converts a Pod"),
        ({"kind": "CronJob", "metadata": {"name": "s"}}, "kind", "runs no schedules"),
        (_pod(initContainers=[{"name": "i", "image": "busybox"}]), "spec.initContainers", "no init containers"),
        (_pod(hostNetwork=True), "spec.hostNetwork", "network of its own"),
        (_pod({"envFrom": [{"configMapRef": {"name": "x"}}]}), "spec.containers[0].envFrom", "no ConfigMaps"),
        (_pod({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}), "env[0].valueFrom", "give the value"),
        (_pod({"securityContext": {"privileged": True}}), "securityContext.privileged", "no privileged"),
        (_pod(securityContext={"capabilities": {"add": ["NET_ADMIN"]}}), "spec.securityContext.capabilities", "container's field"),
        (_pod({"securityContext": {"capabilities": {"ambient": ["NET_ADMIN"]}}}), "securityContext.capabilities.ambient", "add, drop"),
        (_pod({"securityContext": {"readOnlyRootFilesystem": "yes"}}), "securityContext.readOnlyRootFilesystem", "true or false"),
        (_pod({"securityContext": {"runAsNonRoot": True}}), "securityContext.runAsNonRoot", "cannot check the image's own user"),
        (_pod({"lifecycle": {"preStop": {"exec": {"command": ["x"]}}}}), "lifecycle", "preStop"),
        (_pod({"resources": {"limits": {"nvidia.com/gpu": 1}}}), "resources.limits.nvidia.com/gpu", "extended resources"),
        (_pod({"resources": {"limits": {"memory": "lots"}}}), "resources.limits.memory", "is not a quantity"),
        (_pod({"ports": [{"containerPort": 80, "protocol": "SCTP"}]}), "ports[0].protocol", "TCP and UDP"),
        (_pod({"volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "x"}]}, volumes=[{"name": "v", "emptyDir": {}}]), "subPath", "whole volume"),
        (_pod({"volumeMounts": [{"name": "nope", "mountPath": "/v"}]}), "volumeMounts[0].name", "not a volume of the pod"),
        (_pod(volumes=[{"name": "cfg", "configMap": {"name": "x"}}]), "spec.volumes[0].configMap", "containers[].files"),
        (_pod(volumes=[{"name": "pv", "persistentVolumeClaim": {"claimName": "x"}}]), "persistentVolumeClaim", "disk volume"),
        (_pod(volumes=[{"name": "sock", "hostPath": {"path": "/run/x.sock", "type": "Socket"}}]), "hostPath.type", "directories only"),
        (_pod({"frobnicate": True}), "spec.containers[0].frobnicate", "is not a field from_kube knows"),
        (_pod(restartPolicy="Sometimes"), "spec.restartPolicy", "is not Always"),
        ({"kind": "Pod", "metadata": {"name": "Web_1"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}, "metadata.name", "pass name="),
        ({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}, "spec.containers", "at least one container"),
        (
            {
                "kind": "StatefulSet",
                "metadata": {"name": "db"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]},
            },
            "spec.volumeClaimTemplates",
            "persistent volume claims",
        ),
    ],
)
def test_refused(manifest: dict[str, Any], where: str, why: str) -> None:
    with pytest.raises(ConversionError) as caught:
        from_kube(manifest)
    assert where in caught.value.where and why in str(caught.value)


def test_defaults_that_ask_for_nothing_pass() -> None:
    """kubectl get -o yaml writes fields at their defaults; those are no request and convert."""
    manifest = _pod(
        {"securityContext": {"privileged": False, "allowPrivilegeEscalation": True, "readOnlyRootFilesystem": False, "procMount": "Default"}, "envFrom": []},
        hostNetwork=False,
        hostPID=False,
        initContainers=[],
        hostUsers=True,
    )
    assert from_kube(manifest)["containers"] == [{"name": "c", "image": "busybox", "restart_policy": "always"}]


@pytest.mark.parametrize(
    ("container", "spec", "where"),
    [
        ({}, {"hostUsers": False}, "spec.hostUsers"),
        ({"securityContext": {"procMount": "Unmasked"}}, {}, "procMount"),
    ],
)
def test_hardening_that_cannot_be_applied_is_refused(container: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    with pytest.raises(ConversionError) as caught:
        from_kube(_pod(container, **spec))
    assert where in caught.value.where


@pytest.mark.parametrize(
    ("value", "expected"),
    [("500m", 0.5), ("2", 2.0), (1, 1.0), ("0.25", 0.25), ("64Mi", 64 << 20), ("1Gi", 1 << 30), ("128M", 128e6), ("1e3", 1000.0), ("1.5k", 1500.0)],
)
def test_quantity(value: object, expected: float) -> None:
    assert quantity(value, "q") == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "1Xi", "Mi", True, "1e3Mi", None])
def test_bad_quantity(value: object) -> None:
    with pytest.raises(ConversionError):
        quantity(value, "q")


@pytest.mark.parametrize(
    ("policies", "pull", "warned"),
    [
        (["Never"], "never", False),
        (["Never", "Never"], "never", False),
        (["Never", "IfNotPresent"], None, True),
        (["Never", "Always"], "always", True),
        (["IfNotPresent", None], None, False),
        (["Always", None], "always", False),
    ],
)
def test_image_pull_policy(policies: list[Any], pull: Any, warned: bool) -> None:
    containers = [{"name": f"c{i}", "image": "busybox", **({"imagePullPolicy": p} if p else {})} for i, p in enumerate(policies)]
    options = from_kube({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    assert options.get("pull") == pull
    assert any("imagePullPolicy" in str(w) for w in options.get("warnings", [])) == warned


def test_container_hardening_converts() -> None:
    security = {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}
    container = from_kube(_pod({"securityContext": security}))["containers"][0]
    assert container == {
        "name": "c",
        "image": "busybox",
        "restart_policy": "always",
        "cap_add": ["NET_BIND_SERVICE"],
        "cap_drop": ["ALL"],
        "read_only": True,
        "no_new_privileges": True,
    }
