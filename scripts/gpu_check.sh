#!/usr/bin/env bash
# The one-call GPU check of mp3d (the stages live in scripts/gpu_check.py).
#
# On one H100/H200 with a CUDA build of torch, nvcc and ninja, and no package registry, in
# at most 530 s (8 min 50 s) of wall time, one stage after another, each under its own limit:
#   build mp3d with CUDA (TORCH_CUDA_ARCH_LIST=9.0, MAX_JOBS = all cores), check that the
#   CUDA kernels load (mp3d doctor, sm_90 cubins), python -m pytest -m gpu, the benchmarks
#   bench_skinning (B=1024), bench_hash_encoding (2^18..2^22 points), bench_volume_rendering
#   (vs nerfacc) and bench_gaussians (1M Gaussians at 1920x1080, vs gsplat), then the two
#   quality runs (NeRF and Gaussians on the full-resolution lego scene, their training
#   minutes sized to what is left). gsplat and nerfacc compile their CUDA code on first use:
#   that compile runs in the background (niced) while mp3d builds and tests, with 240 s each;
#   a peer not ready by then is left out of its benchmark, with a line saying so.
#
# Budgets (s; caps, each also cut to what the 530 s total leaves after the minimums kept
# for later stages): env 20, wheels 30, build 210, doctor 30, pytest 100, bench_skinning 30,
# bench_hash_encoding 30, bench_volume_rendering 45, bench_gaussians 60, quality_nerf 100,
# quality_splat 100; peers' compile 240 (in the background, from the start).
# A failed or timed-out stage never stops the stages after it.
#
# Reports: $OUT/gpu_summary.md (rewritten after every stage, so it comes back even if the
# call is cut short): the machine, then one table row per stage (ok / FAILED (exit N) /
# TIMEOUT (limit N s) / SKIPPED: why, time, limit), then each stage's last lines (benchmark
# tables, test failures, build errors, PSNR/SSIM). Also $OUT/gpu_logs.txt (every stage's
# full output) and $OUT/quality_nerf_view.png, $OUT/quality_splat_view.png (a held-out view).
# The summary is printed last on stdout too, so the device tool's reply carries it.
#
# Before the call, on this machine (it has a registry): bash scripts/fetch_gpu_wheels.sh
#   (wheels of gsplat, nerfacc, trimesh, plyfile and a copy of ../shared/data/lego in the
#   git-ignored .gpu_carry/, about 42 MiB; the tree and it must stay under 64 MiB together).
# Then one device-tool call:
#   run(command="PYTHONUNBUFFERED=1 bash scripts/gpu_check.sh", carry=[".gpu_carry"],
#       timeout_s=600)
# and read the summary from the reply or from files_at/gpu_summary.md. To rerun only some
# stages on a warm machine (build outputs and the peers' builds in /tmp stay while it is
# warm): bash scripts/gpu_check.sh --only build,doctor,quality --total 300
#   (--skip peers,pytest also works; --quality-minutes M caps the training time).
#
# Here, without CUDA (or with --dry-run): the CUDA build and the peers' compile are skipped
# with a line saying so; tests, benchmarks and quality runs run at tiny CPU sizes, so every
# stage's command line and the summary are exercised, in under a minute:
#   bash scripts/gpu_check.sh --dry-run        # summary in /tmp/mp3d_gpu_check/out
set -u
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/gpu_check.py" "$@"
