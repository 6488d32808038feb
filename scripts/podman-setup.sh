#!/usr/bin/env bash
# Makes Debian's podman build and run this project's images on this machine
# (facts in DESIGN.md, "Containers"): installs podman, runc and debootstrap
# (and the tools scripts/check-image.sh uses) when missing, writes the
# containers.conf this kernel needs, and makes the base images debian:12 and
# debian:12-slim with debootstrap, since no image registry is reachable.
# Idempotent: what exists is kept.
#
#   scripts/podman-setup.sh
#
# Environment: DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (the base images' apt
# sources, default deb.debian.org's).
set -euo pipefail
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
export DEBIAN_FRONTEND=noninteractive
rootfs=""  # debootstrap directory while the base image is made
trap '[[ -n $rootfs ]] && rm -rf "$rootfs"' EXIT

say() { echo "podman-setup: $*"; }
fail() {
  echo "podman-setup: FAIL: $*" >&2
  exit 1
}
[[ $(id -u) -eq 0 ]] || fail "run as root (it installs packages and runs rootful podman)"

setup_podman() {
  local missing=() package status
  for package in podman runc debootstrap jq curl nats-server postgresql; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$package")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # runc: crun refuses this kernel's cgroup mode; no systemd, so cgroupfs; and
  # the default ulimits podman sets fail here (docs: DESIGN.md, "Containers").
  if [[ ! -f /etc/containers/containers.conf ]]; then
    mkdir -p /etc/containers
    cat >/etc/containers/containers.conf <<'CONF'
# Written by scripts/check-image.sh for Debian's podman on this machine.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
    say "wrote /etc/containers/containers.conf (runc, cgroupfs, no default ulimits)"
  fi
  podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >/dev/null ||
    fail "podman does not work (podman info failed)"
  say "$(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'), cgroups $(podman info --format '{{.Host.CgroupManager}}')"
}

make_base_images() {
  if podman image exists debian:12; then
    say "debian:12 already in podman's storage"
  else
    rootfs=$(mktemp -d /var/tmp/check-image-rootfs.XXXXXX)
    say "debootstrap --variant=minbase bookworm from $DEBIAN_MIRROR (once; a few minutes)"
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 ||
      { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; fail "debootstrap failed"; }
    rm -f "$rootfs.log"
    # apt sources as in Debian's own images: bookworm, -updates and -security.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --quiet - debian:12 >/dev/null
    rm -rf "$rootfs"
    rootfs=""
  fi
  if ! podman image exists debian:12-slim; then
    podman tag debian:12 debian:12-slim
  fi
}

setup_podman
make_base_images
