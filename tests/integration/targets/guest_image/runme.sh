#!/usr/bin/env bash
# The guest_image role on the real stack: bad input changes nothing; a build twice is
# unchanged the second time with the same initrd bytes; check mode changes nothing; the
# image boots under libvirt and its agent runs crun. Everything is removed at the end.
set -euo pipefail
NAME="it-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
OUT=$(mktemp)
cleanup() {
  ansible-playbook -i "$INVENTORY_PATH" cleanup.yml -e "image_name=$NAME" "$@" || true
  rm -f "$OUT"
}
trap 'cleanup "$@"' EXIT
run() { ansible-playbook -i "$INVENTORY_PATH" -e "image_name=$NAME" "$@" | tee "$OUT"; }
unchanged() { grep -Eq 'localhost +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$OUT" || { echo "$1" >&2; exit 1; }; }

run bad_input.yml "$@"
run build.yml "$@"
sha1=$(sha256sum "/var/lib/hyper/images/$NAME/initrd.img" | cut -d' ' -f1)
run build.yml "$@"
unchanged "second build of the same image reported changes"
sha2=$(sha256sum "/var/lib/hyper/images/$NAME/initrd.img" | cut -d' ' -f1)
[ "$sha1" = "$sha2" ] || { echo "initrd bytes differ between two builds: $sha1 $sha2" >&2; exit 1; }
echo "reproducible initrd: $sha1"
run build.yml --check "$@"
unchanged "check mode on a built image reported changes"
run boot.yml "$@"
