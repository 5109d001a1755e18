#!/usr/bin/env bash
# Molecule's dependency step for every scenario (config.yml), so that
# `molecule test -s NAME` from the collection root needs nothing else:
#   1. links this work tree as berth.ports into EPHEMERAL_DIR/collections,
#      which config.yml puts first on ANSIBLE_COLLECTIONS_PATH;
#   2. builds the test host images with `run.sh --image-only` when
#      localhost/berth-molecule:latest (Debian 12) or :trixie (Debian 13)
#      does not exist yet (once per machine; minutes). An explicit
#      BERTH_MOLECULE_IMAGE or BERTH_MOLECULE_IMAGE_TRIXIE must exist already.
# Usage: dependency.sh EPHEMERAL_DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
ephemeral=${1:?usage: dependency.sh EPHEMERAL_DIR}

mkdir -p "$ephemeral/collections/ansible_collections/berth"
ln -sfn "$root" "$ephemeral/collections/ansible_collections/berth/ports"

# Both releases' images: a scenario may boot hosts of either (the fleet
# scenarios mix them).
missing=
for image in "${BERTH_MOLECULE_IMAGE:-localhost/berth-molecule:latest}" \
             "${BERTH_MOLECULE_IMAGE_TRIXIE:-localhost/berth-molecule:trixie}"; do
  podman image exists "$image" 2>/dev/null && continue
  case $image in
    localhost/berth-molecule:latest|localhost/berth-molecule:trixie) missing=$image ;;
    *) echo "dependency.sh: $image (BERTH_MOLECULE_IMAGE or BERTH_MOLECULE_IMAGE_TRIXIE) does not exist" >&2
       exit 1 ;;
  esac
done
if [ -n "$missing" ]; then
  echo "dependency.sh: no $missing yet: building the images with run.sh --image-only" >&2
  bash "$here/run.sh" --image-only
fi
