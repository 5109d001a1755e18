#!/usr/bin/env bash
# Molecule's dependency step for every scenario (config.yml), so that
# `molecule test -s NAME` from the collection root needs nothing else:
#   1. links this work tree as berth.ports into EPHEMERAL_DIR/collections,
#      which config.yml puts first on ANSIBLE_COLLECTIONS_PATH;
#   2. builds the test host image with `run.sh --image-only` when
#      localhost/berth-molecule:latest does not exist yet (once per machine;
#      minutes). An explicit BERTH_MOLECULE_IMAGE must exist already.
# Usage: dependency.sh EPHEMERAL_DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
ephemeral=${1:?usage: dependency.sh EPHEMERAL_DIR}

mkdir -p "$ephemeral/collections/ansible_collections/berth"
ln -sfn "$root" "$ephemeral/collections/ansible_collections/berth/ports"

image=${BERTH_MOLECULE_IMAGE:-localhost/berth-molecule:latest}
if ! podman image exists "$image" 2>/dev/null; then
  if [ -n "${BERTH_MOLECULE_IMAGE:-}" ]; then
    echo "dependency.sh: BERTH_MOLECULE_IMAGE=$image does not exist" >&2
    exit 1
  fi
  echo "dependency.sh: no $image yet: building it with run.sh --image-only" >&2
  bash "$here/run.sh" --image-only
fi
