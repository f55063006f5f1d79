#!/usr/bin/env bash
# Gathers, on a machine with a package registry, what scripts/gpu_check.sh needs on the GPU
# machine, which has none, into the git-ignored folder .gpu_carry/ at the repository root:
#
#   .gpu_carry/wheels/  gsplat 1.5.3 and nerfacc 0.5.3 (the peers: pure-Python wheels that
#                       compile their CUDA sources on first use) and trimesh and plyfile
#                       (mp3d's runtime needs that the GPU image lacks; the image already has
#                       numpy, scipy, pillow, tqdm, scikit-image, ninja, rich and jaxtyping,
#                       which is everything else mp3d, gsplat and nerfacc require)
#   .gpu_carry/lego/    a copy of ../shared/data/lego (about 36 MB) for the two quality runs:
#                       ../shared beside the checkout does not travel to the device machine
#
# Then name `.gpu_carry` in the device tool's `carry` (see scripts/gpu_check.sh). What
# travels (working tree + carry) must stay under 64 MiB; this script prints the total.
#
#   bash scripts/fetch_gpu_wheels.sh [--no-data]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO/.gpu_carry"
LEGO="${MP3D_LEGO:-$REPO/../shared/data/lego}"
PY="${PYTHON:-python3}"
# One version of each: two versions of one name stop the whole install there.
WHEELS=(gsplat==1.5.3 nerfacc==0.5.3 trimesh==5.2.0 plyfile==1.1.5)

copy_data=1
for arg in "$@"; do
  case "$arg" in
    --no-data) copy_data=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

mkdir -p "$DEST/wheels"
# The GPU image runs Python 3.12 on x86-64 (device README); these four are py3-none-any
# wheels, which these flags match, and --only-binary keeps sdists out.
"$PY" -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -d "$DEST/wheels" "${WHEELS[@]}"
echo "wheels in $DEST/wheels:"
ls -1 "$DEST/wheels"

if [ "$copy_data" = 1 ]; then
  if [ -f "$LEGO/transforms_train.json" ]; then
    rm -rf "$DEST/lego.tmp"
    cp -r "$LEGO" "$DEST/lego.tmp"
    rm -rf "$DEST/lego"
    mv "$DEST/lego.tmp" "$DEST/lego"
    echo "lego scene copied to $DEST/lego"
  else
    echo "no lego scene at $LEGO: the GPU quality runs will be skipped (set MP3D_LEGO)" >&2
  fi
fi

cd "$REPO"
tree_bytes=$(git ls-files -co --exclude-standard -z | xargs -0 -r du -cb 2>/dev/null \
  | awk 'END {print $1}')
carry_bytes=$(du -sb "$DEST" | awk '{print $1}')
total=$(( ${tree_bytes:-0} + carry_bytes ))
echo "travels: working tree $((tree_bytes / 1048576)) MiB + .gpu_carry" \
  "$((carry_bytes / 1048576)) MiB = $((total / 1048576)) MiB (limit 64 MiB)"
if [ "$total" -gt $((62 * 1048576)) ]; then
  echo "WARNING: close to or over the 64 MiB limit; try --no-data" >&2
fi
