#!/usr/bin/env bash
# The host role: applied twice (the second run changes nothing), then in check mode.
set -euo pipefail
run() {  # run a playbook, keep its output, print it
  ansible-playbook -i "$INVENTORY_PATH" "$@" | tee "$OUT"
}
OUT=$(mktemp)
# The host role starts the host service (hyper-hostd) from this test tree, which ansible-test removes
# after the target: stop it at the end unless one was running before (then the role left it alone).
HOSTD="${PWD%%/tests/output/*}/roles/host/files/hyper-hostd"
HOSTD_BEFORE=0
python "$HOSTD" --status >/dev/null 2>&1 || HOSTD_BEFORE=$?
cleanup() {
  rm -f "$OUT"
  if [ "$HOSTD_BEFORE" -ne 0 ]; then python "$HOSTD" --stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

run apply.yml "$@"
run apply.yml "$@"
grep -Eq 'localhost +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$OUT" || { echo "second run of the host role changed something" >&2; exit 1; }
run apply.yml --check "$@"
grep -Eq 'changed=0 +unreachable=0 +failed=0' "$OUT" || { echo "check mode on a set-up host reported changes or failed" >&2; exit 1; }
run verify.yml "$@"
