#!/bin/sh
# guest_root.sh DOMAIN SCRIPT: run SCRIPT with sh in the guest's root (not in a container) through libvirt's
# own agent command, print its stdout. For checks the modules do not expose (a container's log files).
set -eu
dom=$1
script=$2
req=$(python3 -c 'import json, sys; print(json.dumps({"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", sys.argv[1]], "capture-output": True}}))' "$script")
pid=$(virsh -c qemu:///system qemu-agent-command "$dom" "$req" | python3 -c 'import json, sys; print(json.load(sys.stdin)["return"]["pid"])')
for _ in $(seq 100); do
  status=$(virsh -c qemu:///system qemu-agent-command "$dom" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}")
  if printf '%s' "$status" | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["return"]["exited"] else 1)'; then
    printf '%s' "$status" | python3 -c 'import base64, json, sys; r = json.load(sys.stdin)["return"]; sys.stdout.write(base64.b64decode(r.get("out-data", "")).decode()); sys.exit(r.get("exitcode", 1))'
    exit $?
  fi
  sleep 0.2
done
echo "guest_root.sh: the command did not end" >&2
exit 1
