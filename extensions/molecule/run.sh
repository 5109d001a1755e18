#!/usr/bin/env bash
# Run every Molecule scenario of berth.ports against real Debian 12 and 13
# hosts: systemd as PID 1 and a running firewalld, in podman containers.
#
# Self-sufficient on a bare Debian 12 machine as root:
#   1. apt-get installs podman, runc and mmdebstrap when they are missing;
#   2. builds a test host root filesystem for each release, bookworm and
#      trixie, with mmdebstrap (cached under $BERTH_MOLECULE_CACHE, each
#      keyed by a hash of its recipe), imports each into podman as
#      localhost/berth-molecule:<key> and tags them
#      localhost/berth-molecule:bookworm (also :latest) and :trixie, the
#      images the scenarios name when BERTH_MOLECULE_IMAGE and
#      BERTH_MOLECULE_IMAGE_TRIXIE are not set;
#   3. runs `molecule test -s NAME` from the collection root for each
#      scenario (or those named as arguments): the same command that works
#      on its own, since config.yml and dependency.sh carry the rest;
#   4. removes the scenario containers, keeps the cached image.
#
#   run.sh --image-only   steps 1 and 2 only (what dependency.sh runs when
#                         an image is missing)
#
# Environment:
#   BERTH_MOLECULE_CACHE   cache directory (default /var/cache/berth-molecule)
#   BERTH_MOLECULE_MIRROR  Debian mirror (default: the one apt uses here)
#   BERTH_MOLECULE_REBUILD set to 1 to rebuild the images
#
# Why podman + runc: this machine has hybrid cgroups (v1 controllers plus
# an empty v2 hierarchy), which crun refuses; runc boots systemd there, and
# also on pure v2 hosts. Root lacks CAP_SYS_RESOURCE in some sandboxes, so
# the containers' rlimits are set below usual hard limits. Both are platform
# options in config.yml (and in the fleet scenarios' platforms), which
# Molecule applies by itself.
set -euo pipefail

image_only=
if [ "${1:-}" = --image-only ]; then
  image_only=1
  shift
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BERTH_MOLECULE_CACHE:-/var/cache/berth-molecule}
# Debian 12 and 13: the scenarios' hosts run one or the other (the
# multi-host scenarios mix both). The same packages exist in both releases.
suites=(bookworm trixie)
packages=(systemd systemd-sysv dbus firewalld nftables python3 python3-apt iproute2
          procps netbase curl ca-certificates)
# Bump when the build steps below change in a way the package list does not show.
recipe_version=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman, mmdebstrap --mode=root)"
[ -n "$image_only" ] || command -v molecule >/dev/null \
  || die "molecule not on PATH (activate the venv: .venv/bin)"

start=$(date +%s)

# --- 1. host tools ---------------------------------------------------------
need=()
for tool in podman:podman runc:runc mmdebstrap:mmdebstrap; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" ca-certificates >/dev/null
fi

# --- 2. test host image ----------------------------------------------------
mirror=${BERTH_MOLECULE_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
              grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'; } \
            | grep -E '/debian/?$' | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi
mkdir -p "$cache"
# One key per release: a hash of the suite, the recipe version and the
# package list, so each image is rebuilt only when its own recipe changes.
declare -A keys
for suite in "${suites[@]}"; do
  keys[$suite]=$(printf '%s\n' "$suite" "$recipe_version" "${packages[@]}" | sha256sum | cut -c1-12)
done

# build_image SUITE: localhost/berth-molecule:<key> from the cached root
# filesystem (built with mmdebstrap when missing).
build_image() {
  local suite=$1 key=${keys[$1]} image tarball include
  image=localhost/berth-molecule:$key
  tarball=$cache/rootfs-$key.tar
  if [ "${BERTH_MOLECULE_REBUILD:-0}" = 1 ]; then
    # Not forced: an image still used by a container (another run) stays.
    podman rmi "$image" >/dev/null 2>&1 || true
    rm -f "$tarball"
  fi
  podman image exists "$image" && return 0
  if [ ! -s "$tarball" ]; then
    log "building Debian $suite rootfs from $mirror (key $key)"
    include=$(IFS=,; echo "${packages[*]}")
    # The hooks are run by mmdebstrap, which passes the rootfs as $1: single
    # quotes are meant.
    # shellcheck disable=SC2016
    mmdebstrap --variant=minbase --mode=root --include="$include" \
      --customize-hook='echo berth-test > "$1/etc/hostname"' \
      --customize-hook='rm -f "$1/etc/machine-id"; touch "$1/etc/machine-id"' \
      --customize-hook='chroot "$1" systemctl mask getty@tty1.service console-getty.service systemd-logind.service >/dev/null 2>&1 || true' \
      "$suite" "$cache/partial-$key.tar" "$mirror" 2>&1 | tail -n 3 >&2
    mv "$cache/partial-$key.tar" "$tarball"
  fi
  log "importing $tarball as $image"
  podman import --quiet --change 'CMD ["/sbin/init"]' \
    --change 'LABEL org.berth.molecule.key='"$key" \
    --change 'LABEL org.berth.molecule.suite='"$suite" "$tarball" "$image" >/dev/null
}

# One build at a time, should two runs start together.
exec 9>"$cache/.lock"
flock 9
for suite in "${suites[@]}"; do
  build_image "$suite"
  # The stable names for `molecule test` on its own (the scenarios'
  # defaults): :bookworm (also :latest, the name older checkouts use) and
  # :trixie.
  podman tag "localhost/berth-molecule:${keys[$suite]}" "localhost/berth-molecule:$suite"
done
podman tag "localhost/berth-molecule:${keys[bookworm]}" localhost/berth-molecule:latest
# Older images and root filesystems of these recipes are dead weight (the
# release tags are moved above, not removed).
keep=(-e ':latest$')
for suite in "${suites[@]}"; do
  keep+=(-e ":${keys[$suite]}\$" -e ":$suite\$")
done
podman images --format '{{.Repository}}:{{.Tag}}' \
  | grep '^localhost/berth-molecule:' | grep -v "${keep[@]}" \
  | xargs -r podman rmi >/dev/null 2>&1 || true
for f in "$cache"/rootfs-*.tar; do
  [ -e "$f" ] || continue
  case " ${keys[*]} " in
    *" $(basename "$f" .tar | cut -d- -f2) "*) ;;
    *) rm -f "$f" ;;
  esac
done
flock -u 9
if [ -n "$image_only" ]; then
  log "images ready in $(( $(date +%s) - start ))s: $(for suite in "${suites[@]}"; do
    printf 'localhost/berth-molecule:%s (%s) ' "${keys[$suite]}" "$suite"; done)"
  exit 0
fi
# This run pins the exact builds, should another run move the tags meanwhile.
export BERTH_MOLECULE_IMAGE=localhost/berth-molecule:${keys[bookworm]}
export BERTH_MOLECULE_IMAGE_TRIXIE=localhost/berth-molecule:${keys[trixie]}

# --- 3. scenarios ----------------------------------------------------------
scenarios=()
cleanup() {
  # Only the containers of the scenarios this run started (berth-<scenario>-N),
  # in case one was interrupted: another run may be using other scenarios.
  local s
  for s in "${scenarios[@]}"; do
    podman ps -a --filter label=owner=molecule --format '{{.Names}}' \
      | grep -E "^berth-${s}-[0-9]+\$" | xargs -r podman rm -f >/dev/null 2>&1 || true
  done
}

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  for f in "$here"/*/molecule.yml; do scenarios+=("$(basename "$(dirname "$f")")"); done
fi

trap cleanup EXIT

# The collection root: Molecule finds extensions/molecule/<scenario>/ and
# extensions/molecule/config.yml by itself; dependency.sh (each scenario's
# first step) puts this work tree on the collections path.
cd "$root"
failed=()
for s in "${scenarios[@]}"; do
  log "scenario $s"
  t0=$(date +%s)
  if molecule test -s "$s"; then
    log "scenario $s passed in $(( $(date +%s) - t0 ))s"
  else
    log "scenario $s FAILED after $(( $(date +%s) - t0 ))s"
    failed+=("$s")
  fi
done

log "total $(( $(date +%s) - start ))s"
[ ${#failed[@]} -eq 0 ] || die "failed scenarios: ${failed[*]}"
log "all scenarios passed: ${scenarios[*]}"
