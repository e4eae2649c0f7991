#!/usr/bin/env bash
# Prepare this machine to run hyper.pods from a checkout: system packages (bindep.txt),
# a Python venv in .venv (requirements.txt + test-requirements.txt), and the libvirt
# daemons. Safe to run again: it only installs or starts what is missing.
# Usage: sudo bash scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
  echo "bootstrap: run as root (sudo bash scripts/bootstrap.sh)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "bootstrap: only Debian and Ubuntu are automated here; install the packages in bindep.txt by hand" >&2
  exit 1
fi

echo "== system packages for the Python environment"
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3 python3-venv python3-dev gcc make git rsync pkg-config libvirt-dev >/dev/null

echo "== Python environment in .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -r test-requirements.txt bindep

echo "== system packages from bindep.txt"
missing=$(.venv/bin/bindep -b test || true)
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086  # one package name per word
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

echo "== libvirt daemons"
if [ -d /run/systemd/system ]; then
  systemctl start virtlogd libvirtd
else
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
fi
for _ in $(seq 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
virsh -c qemu:///system version >/dev/null

mkdir -p .build/collections/ansible_collections/hyper
ln -sfn "$PWD" .build/collections/ansible_collections/hyper/pods
echo "bootstrap: ready"
