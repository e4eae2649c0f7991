#!/usr/bin/env bash
# A controller reaching a hyper host remotely, the two ways docs/guide.md describes, with this machine as the
# "remote" host behind an sshd of the test's own (its own host key, client key and known_hosts under a temporary
# directory; root's ~/.ssh and the system's sshd are not touched):
#   1. modules over SSH: hyper_pod runs on the host `hyper_host` (ansible_connection ssh), with the options
#      hyper.pods.from_kube made from a Kubernetes Pod manifest; then hyper_exec checks the pod;
#   2. a remote libvirt URI: the inventory plugin lists the pod through qemu+ssh://root@localhost/system and the
#      hyper.pods.hyper connection runs commands and copies files in its containers through the same URI (files go
#      through the guest agent: the data channel needs the controller on the host).
# The trap stops sshd (by its pid file), removes the pod and the directory.
set -euo pipefail
NAME="rmt-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
WORK=$(mktemp -d /tmp/hyper-remote-XXXXXX)
export ANSIBLE_ROLES_PATH=..
cleanup() {
  ansible-playbook -i "$INVENTORY_PATH" cleanup.yml -e "pod_name=$NAME" -e "work=$WORK" "$@" || true
  rm -rf "$WORK"
}
trap 'cleanup "$@"' EXIT

ansible-playbook -i "$INVENTORY_PATH" setup.yml -e "pod_name=$NAME" -e "work=$WORK" "$@"
ansible-playbook -i "$WORK/hosts.yml" pod.yml -e "@$WORK/vars.yml" "$@"

ansible-inventory -i "$WORK/remote.hyper_pods.yml" --list > "$WORK/list.json"
python3 - "$WORK/list.json" "$NAME" "$(cat "$WORK/uri")" <<'PY'
import json, sys

def plain(value):
    """ansible-inventory --list writes unsafe values as {"__ansible_unsafe": value}."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list) else value

listing, pod, uri = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
group = "pod_" + pod.replace("-", "_")
hosts = sorted(listing.get(group, {}).get("hosts", []))
assert hosts == [f"{pod}/client", f"{pod}/web"], (hosts, sorted(listing))
web = plain(listing["_meta"]["hostvars"][f"{pod}/web"])
assert web["ansible_hyper_uri"] == uri, web["ansible_hyper_uri"]
assert web["hyper_pod"]["labels"] == {"app": "web"}, web["hyper_pod"]["labels"]
print(f"inventory over {uri.split('?')[0]}: {hosts}")
PY
ansible-playbook -i "$WORK/remote.hyper_pods.yml" connection.yml -e "@$WORK/vars.yml" "$@"
