#!/usr/bin/env bash
# The hyper_pods inventory plugin on the real stack: a pod with two containers and a label that is
# a template; ansible-inventory lists both containers with the plugin's variables and groups, the
# label verbatim; a playbook against the inventory reads the label without running it, and another
# runs a command in each container through the hyper.pods.hyper connection. The pod is removed at
# the end.
set -euo pipefail
NAME="inv-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
WORK=$(mktemp -d)
PWNED="/tmp/hyper-inventory-$NAME-pwned"
EVIL="{{ lookup('pipe', 'touch $PWNED') }}"
export ANSIBLE_ROLES_PATH=..
cleanup() {
  ansible-playbook -i "$INVENTORY_PATH" cleanup.yml -e "pod_name=$NAME" "$@" || true
  rm -rf "$WORK" "$PWNED"
}
trap 'cleanup "$@"' EXIT

# The label reaches hyper_pod untemplated: an !unsafe extra var.
printf 'evil: !unsafe "%s"\n' "$EVIL" > "$WORK/evil.yml"
ansible-playbook -i "$INVENTORY_PATH" setup.yml -e "pod_name=$NAME" -e "@$WORK/evil.yml" "$@"

cat > "$WORK/test.hyper_pods.yml" <<YAML
plugin: hyper.pods.hyper_pods
filters:
  names: ["$NAME"]
strict: true
keyed_groups:
  - key: hyper_pod.labels.suite
    prefix: label_suite
compose:
  composed_label: hyper_pod.labels.suite
YAML

ansible-inventory -i "$WORK/test.hyper_pods.yml" --list > "$WORK/list.json"
python3 check_inventory.py "$WORK/list.json" "$NAME" "$EVIL"

mkdir "$WORK/out"
ansible-playbook -i "$WORK/test.hyper_pods.yml" read_vars.yml -e "out_dir=$WORK/out" "$@"
for container in first second; do
  [ "$(cat "$WORK/out/$container.label")" = "$EVIL" ] || { echo "label of $container came out as: $(cat "$WORK/out/$container.label")" >&2; exit 1; }
done

# Each container host is reached through the connection plugin with the variables the inventory set.
ansible-playbook -i "$WORK/test.hyper_pods.yml" raw_echo.yml "$@"

[ ! -e "$PWNED" ] || { echo "a label from the domain metadata was run as a template: $PWNED exists" >&2; exit 1; }
echo "label read verbatim, never run"
