#!/usr/bin/env bash
# Prepare a Debian or Ubuntu host for kvmlab's live labs: system packages, /dev/kvm
# permissions, and the libvirt daemons. Idempotent: every step checks before it acts,
# and root (or sudo) is asked for only when something has to change.
set -euo pipefail

PACKAGES=(
  qemu-system-x86 qemu-utils
  libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
  busybox-static cpio iproute2 procps python3-venv python3-dev gcc libc6-dev make
  openssh-server openssh-client
  dnsmasq-base nftables lvm2
  chromium chromium-driver
)

say() { printf 'kvmlab setup: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    say "this step needs root, and there is no sudo: run as root: $*"
    exit 1
  fi
}

if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get: this is not Debian or Ubuntu. Install by hand (see README.md, 'Other systems'):"
  say "  QEMU (x86_64 system emulator and qemu-img), libvirt daemon + client + headers,"
  say "  pkg-config, a static busybox, cpio, iproute2, Python 3.11+ with venv."
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages present"
fi

# Without udev nobody gives /dev/kvm its usual group and mode. Left root-only, QEMU
# (running as libvirt-qemu) cannot open it and libvirt re-probes QEMU at every start.
# A device that group kvm may already use is left as it is.
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
  read -r group mode < <(stat -c '%G %a' /dev/kvm)
  group_rw=$(( (8#$mode & 8#060) == 8#060 ))
  other_rw=$(( (8#$mode & 8#006) == 8#006 ))
  if [ "$other_rw" -eq 0 ] && { [ "$group" != kvm ] || [ "$group_rw" -eq 0 ]; }; then
    say "giving /dev/kvm group kvm, mode 660"
    as_root chgrp kvm /dev/kvm
    as_root chmod 660 /dev/kvm
  fi
fi

# The CPU lab's scheduler traces (kvmlab cpu record --trace) read the kernel's trace events
# through tracefs. Mount it where the kernel expects it if no tracefs is mounted yet.
if ! grep -qw tracefs /proc/mounts && [ -d /sys/kernel/tracing ]; then
  say "mounting tracefs on /sys/kernel/tracing"
  as_root mount -t tracefs nodev /sys/kernel/tracing || say "could not mount tracefs"
fi

# Start the daemons that are not running (no systemd needed). libvirtd can answer without
# virtlogd, but then it cannot start a guest (it logs each guest's console through it).
answers() { as_root virsh -c qemu:///system version >/dev/null 2>&1; }
# Running: a process of that name that is not a zombie (a killed daemon nobody reaped).
running() { ps -C "$1" -o stat= 2>/dev/null | grep -qv '^Z'; }
running virtlogd || { say "starting virtlogd"; as_root virtlogd -d; }
if ! answers; then
  running libvirtd || { say "starting libvirtd"; as_root libvirtd -d; }
  for _ in $(seq 1 50); do answers && break; sleep 0.2; done
fi
if answers; then
  say "libvirtd answers on qemu:///system"
else
  say "libvirtd does not answer on qemu:///system"
  exit 1
fi
