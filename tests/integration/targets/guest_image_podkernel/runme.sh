#!/usr/bin/env bash
# The guest_image role with guest_image_kernel_build on the real stack: the first run compiles
# the pod kernel (or finds it in the cache), a second run and a check-mode run change nothing,
# the image holds the ELF vmlinux its manifest names, a throwaway VM on it takes a disk and an
# interface attached live and reports a kernel panic through pvpanic (devices.py), and one pod
# with containers, a network with a port mapping, volumes, a virtio-fs share, services, exec and
# the data channel runs on it. The image, the pod and the VM are removed at the end; the compiled
# kernel stays in the cache (<root>/cache/kernels).
set -euo pipefail
NAME="it-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
OUT=$(mktemp)
# The trap runs in the context of whatever function is running then: keep the script's own arguments.
ARGS=("$@")
export ANSIBLE_ROLES_PATH="$(cd .. && pwd)${ANSIBLE_ROLES_PATH:+:$ANSIBLE_ROLES_PATH}"
cleanup() {
  ansible-playbook -i "$INVENTORY_PATH" cleanup.yml -e "image_name=$NAME" ${ARGS[@]+"${ARGS[@]}"} || true
  rm -f "$OUT"
}
trap cleanup EXIT
run() { ansible-playbook -i "$INVENTORY_PATH" -e "image_name=$NAME" "$@" | tee "$OUT"; }
unchanged() { grep -Eq 'localhost +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$OUT" || { echo "$1" >&2; exit 1; }; }

run build.yml "$@"
sha1=$(sha256sum "/var/lib/hyper/images/$NAME/vmlinux" | cut -d' ' -f1)
run build.yml "$@"
unchanged "second build of the pod kernel image reported changes"
run build.yml --check "$@"
unchanged "check mode on a built pod kernel image reported changes"
sha2=$(sha256sum "/var/lib/hyper/images/$NAME/vmlinux" | cut -d' ' -f1)
[ "$sha1" = "$sha2" ] || { echo "vmlinux changed between two runs: $sha1 $sha2" >&2; exit 1; }
run image.yml "$@"
run pod.yml "$@"
# After pod.yml: its setup_hyper_host made the network "hyper". The library is imported from the
# collection ansible-test runs (this directory is somewhere under .../ansible_collections/hyper/pods/).
PYTHONPATH="${PWD%%/ansible_collections/*}" python devices.py /var/lib/hyper "$NAME" hyper
