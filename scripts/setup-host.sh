#!/usr/bin/env bash
# Prepare a Debian or Ubuntu host for kvmlab's live labs: system packages, /dev/kvm
# permissions, and the libvirt daemons. Idempotent: every step checks before it acts.
# Runs as root, or through sudo when it is available.
set -euo pipefail

PACKAGES=(
  qemu-system-x86 qemu-utils
  libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
  busybox-static cpio iproute2 python3-venv python3-dev gcc make
)

say() { printf 'kvmlab setup: %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  say "not root and no sudo: install these packages by hand: ${PACKAGES[*]}"
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get: this is not Debian or Ubuntu. Install by hand (see README.md, 'Other systems'):"
  say "  QEMU (x86_64 system emulator and qemu-img), libvirt daemon + client + headers,"
  say "  pkg-config, a static busybox, iproute2, Python 3.11+ with venv."
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages present"
fi

# Without udev nobody gives /dev/kvm its usual group and mode. Left root-only, QEMU
# (running as libvirt-qemu) cannot open it and libvirt re-probes QEMU at every start.
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
  if [ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]; then
    say "giving /dev/kvm group kvm, mode 660"
    "${SUDO[@]}" chgrp kvm /dev/kvm
    "${SUDO[@]}" chmod 660 /dev/kvm
  fi
fi

# Start the daemons when they are not running (no systemd needed).
running() { pgrep -x "$1" >/dev/null 2>&1; }
if ! running virtlogd; then
  say "starting virtlogd"
  "${SUDO[@]}" virtlogd -d
fi
if ! running libvirtd; then
  say "starting libvirtd"
  "${SUDO[@]}" libvirtd -d
fi
for _ in $(seq 1 50); do
  "${SUDO[@]}" virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
if "${SUDO[@]}" virsh -c qemu:///system version >/dev/null 2>&1; then
  say "libvirtd answers on qemu:///system"
else
  say "libvirtd does not answer on qemu:///system"
  exit 1
fi
