#!/usr/bin/env bash
# Run every Molecule scenario of berth.ports against a real Debian 12 host:
# systemd as PID 1 and a running firewalld, in a podman container.
#
# Self-sufficient on a bare Debian 12 machine as root:
#   1. apt-get installs podman, runc and mmdebstrap when they are missing;
#   2. builds the test host root filesystem with mmdebstrap (cached under
#      $BERTH_MOLECULE_CACHE, keyed by a hash of the recipe) and imports it
#      into podman as localhost/berth-molecule:<key>;
#   3. runs `molecule test` for each scenario (or those named as arguments);
#   4. removes the scenario containers, keeps the cached image.
#
# Environment:
#   BERTH_MOLECULE_CACHE   cache directory (default /var/cache/berth-molecule)
#   BERTH_MOLECULE_MIRROR  Debian mirror (default: the one apt uses here)
#   BERTH_MOLECULE_REBUILD set to 1 to rebuild the image
#
# Why podman + runc: this machine has hybrid cgroups (v1 controllers plus
# an empty v2 hierarchy), which crun refuses; runc boots systemd there, and
# also on pure v2 hosts. Root lacks CAP_SYS_RESOURCE in some sandboxes, so
# the container's rlimits are set no higher than the caller's hard limits.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BERTH_MOLECULE_CACHE:-/var/cache/berth-molecule}
suite=bookworm
packages=(systemd systemd-sysv dbus firewalld nftables python3 python3-apt iproute2
          procps netbase curl ca-certificates)
# Bump when the build steps below change in a way the package list does not show.
recipe_version=1

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (rootful podman, mmdebstrap --mode=root)"
command -v molecule >/dev/null || die "molecule not on PATH (activate the venv: .venv/bin)"

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

key=$(printf '%s\n' "$suite" "$recipe_version" "${packages[@]}" | sha256sum | cut -c1-12)
image=localhost/berth-molecule:$key
tarball=$cache/rootfs-$key.tar
mkdir -p "$cache"

if [ "${BERTH_MOLECULE_REBUILD:-0}" = 1 ]; then
  # Not forced: an image still used by a container (another run) stays.
  podman rmi "$image" >/dev/null 2>&1 || true
  rm -f "$tarball"
fi

# One build at a time, should two runs start together.
exec 9>"$cache/.lock"
flock 9
if ! podman image exists "$image"; then
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
    --change 'LABEL org.berth.molecule.key='"$key" "$tarball" "$image" >/dev/null
  # Older images and root filesystems of this recipe are dead weight.
  podman images --format '{{.Repository}}:{{.Tag}}' \
    | grep '^localhost/berth-molecule:' | grep -v ":$key\$" \
    | xargs -r podman rmi >/dev/null 2>&1 || true
  find "$cache" -maxdepth 1 -name 'rootfs-*.tar' ! -name "rootfs-$key.tar" -delete
fi
flock -u 9
export BERTH_MOLECULE_IMAGE=$image

# podman settings for the scenario containers, through CONTAINERS_CONF so
# the host's own configuration is left alone.
hard_nofile=$(ulimit -Hn); hard_nproc=$(ulimit -Hu)
[ "$hard_nofile" = unlimited ] || [ "$hard_nofile" -gt 65536 ] && hard_nofile=65536
[ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 4096 ] && hard_nproc=4096
export CONTAINERS_CONF=$cache/containers.conf
cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$hard_nofile:$hard_nofile", "nproc=$hard_nproc:$hard_nproc"]
[engine]
runtime = "runc"
EOF

# --- 3. collection on the collections path ---------------------------------
workdir=$(mktemp -d /tmp/berth-molecule.XXXXXX)
scenarios=()
trap 'rm -rf "$workdir"' EXIT
cleanup() {
  # Only the containers of the scenarios this run started (berth-<scenario>-N),
  # in case one was interrupted: another run may be using other scenarios.
  local s
  for s in "${scenarios[@]}"; do
    podman ps -a --filter label=owner=molecule --format '{{.Names}}' \
      | grep -E "^berth-${s}-[0-9]+\$" | xargs -r podman rm -f >/dev/null 2>&1 || true
  done
  rm -rf "$workdir"
}

found=
IFS=: read -r -a cpaths <<<"${ANSIBLE_COLLECTIONS_PATH:-}"
for p in "${cpaths[@]}"; do
  [ -n "$p" ] && [ -e "$p/ansible_collections/berth/ports/roles" ] && found=$p && break
done
if [ -z "$found" ]; then
  mkdir -p "$workdir/collections/ansible_collections/berth"
  ln -s "$root" "$workdir/collections/ansible_collections/berth/ports"
  export ANSIBLE_COLLECTIONS_PATH=$workdir/collections${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}
  log "using the work tree as berth.ports ($root)"
else
  log "using berth.ports from $found"
fi

# --- 4. scenarios ----------------------------------------------------------
if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  for f in "$here"/*/molecule.yml; do scenarios+=("$(basename "$(dirname "$f")")"); done
fi

trap cleanup EXIT

cd "$here/.."   # extensions/: Molecule finds molecule/<scenario>/molecule.yml
failed=()
for s in "${scenarios[@]}"; do
  log "scenario $s"
  t0=$(date +%s)
  if MOLECULE_SCENARIO_NAME=$s molecule --base-config molecule/config.yml test -s "$s"; then
    log "scenario $s passed in $(( $(date +%s) - t0 ))s"
  else
    log "scenario $s FAILED after $(( $(date +%s) - t0 ))s"
    failed+=("$s")
  fi
done

log "total $(( $(date +%s) - start ))s"
[ ${#failed[@]} -eq 0 ] || die "failed scenarios: ${failed[*]}"
log "all scenarios passed: ${scenarios[*]}"
