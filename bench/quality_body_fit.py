"""Body fitting quality on synthetic keypoints of the built-in body (mp3d.body.fit).

(a) SMPLify: --n random bodies (betas ~ N(0, 1), poses uniform within half the joint limits,
    any heading, +-0.15 rad of lean and roll, pelvis 3-6 m away near the image centre of a
    1000x1000 camera with f = 1000 px), their 24 joints projected with 2-pixel Gaussian noise
    per axis, fitted by fit_smplify; reports MPJPE after Procrustes alignment (goal: at most
    40 mm) and the reprojection error. With --full-limits also poses over the whole joint
    limits (more depth ambiguity from one view, so a larger error).
(b) Learned gradient descent against plain gradient descent: trains the LGD network for
    --lgd-minutes on bodies sampled from the model, then fits --n fresh bodies of the same
    distribution (headings within 45 degrees of facing the camera) from the same start with
    LGD and with plain gradient descent (the best of a few step sizes after --gd-steps
    steps); reports PA-MPJPE per step, the steps each needs to reach given errors, and the
    final errors.

Runs on one CPU thread by default: the fitting works on [B,24,3] tensors, where threads only
add overhead (and on a shared machine, contention).

    python bench/quality_body_fit.py
    python bench/quality_body_fit.py --n 100 --lgd-minutes 2 --full-limits
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from mp3d.body import SMPL
from mp3d.body.evaluation import pa_mpjpe, sample_bodies
from mp3d.body.fit import SMPLifyConfig, fit_smplify
from mp3d.body.lgd import LGDConfig, fit_lgd, gradient_descent, train_lgd

REPORT_STEPS = (0, 1, 2, 3, 4, 8, 16, 32, 100, 300, 1000, 3000)
GD_LEARNING_RATES = (3e-6, 1e-5, 2e-5)


def smplify_quality(model: SMPL, n: int, seed: int, pose_scale: float) -> None:
    """Fits n random bodies with SMPLify and prints PA-MPJPE and reprojection statistics."""
    data = sample_bodies(
        model, n, torch.Generator().manual_seed(seed), pose_scale=pose_scale, noise_px=2.0
    )
    start = time.perf_counter()
    result = fit_smplify(model, data.keypoints, data.K, config=SMPLifyConfig())
    seconds = time.perf_counter() - start
    errors = 1000.0 * pa_mpjpe(result.joints, data.joints)
    reprojection = result.mean_error()
    print(
        f"  poses uniform within {pose_scale:g} x the joint limits, {n} bodies, "
        f"{seconds:.1f} s ({1000 * seconds / n:.0f} ms per body)"
    )
    print(
        f"  PA-MPJPE mm: mean {errors.mean():.1f}  median {errors.median():.1f}  "
        f"90th pct {errors.quantile(0.9):.1f}  max {errors.max():.1f}"
    )
    print(
        f"  reprojection px: mean {reprojection.mean():.2f} (keypoint noise: 2 px per axis, "
        f"{2 * math.sqrt(math.pi / 2):.2f} px expected length)"
    )


def _curve(trajectory: list[torch.Tensor], truth: torch.Tensor) -> list[float]:
    return [1000.0 * float(pa_mpjpe(joints, truth).mean()) for joints in trajectory]


def _steps_to(curve: list[float], level: float) -> str:
    for step, value in enumerate(curve):
        if value <= level:
            return str(step)
    return f"> {len(curve) - 1}"


def lgd_comparison(model: SMPL, n: int, seed: int, minutes: float, gd_steps: int) -> None:
    """Trains LGD, then compares it with plain gradient descent on fresh bodies."""
    config = LGDConfig(minutes=minutes, iterations=10**9, seed=seed)
    trained = train_lgd(model, config, progress=False)
    first = 1000 * sum(trained.final_errors[:20]) / max(1, len(trained.final_errors[:20]))
    last = 1000 * sum(trained.final_errors[-20:]) / max(1, len(trained.final_errors[-20:]))
    print(
        f"  trained {trained.iterations} iterations (batch {config.batch_size}, "
        f"T = {config.steps}) in {trained.seconds:.0f} s; training MPJPE (camera frame, "
        f"after step T) {first:.0f} -> {last:.0f} mm"
    )
    data = sample_bodies(model, n, torch.Generator().manual_seed(seed + 1), **config.sampling)
    lgd = fit_lgd(model, trained.net, data.keypoints, data.K, steps=4 * config.steps)
    lgd_curve = _curve(lgd.trajectory, data.joints)
    best = None
    for lr in GD_LEARNING_RATES:
        run = gradient_descent(
            model,
            data.keypoints,
            data.K,
            steps=gd_steps,
            lr=lr,
            config=trained.net.objective_config(),
        )
        curve = _curve(run.trajectory, data.joints)
        print(
            f"  plain gradient descent lr {lr:g}: PA-MPJPE after {gd_steps} steps "
            f"{curve[-1]:.1f} mm (best {min(curve):.1f} at step {curve.index(min(curve))}), "
            f"{run.seconds:.1f} s"
        )
        if best is None or curve[-1] < best[1][-1]:
            best = (lr, curve, run)
    lr, gd_curve, gd_run = best
    print(f"  PA-MPJPE (mm) per step on {n} fresh bodies, same start (step 0):")
    print(f"    step    LGD      GD (lr {lr:g})")
    for step in REPORT_STEPS:
        if step >= max(len(lgd_curve), len(gd_curve)):
            break
        lgd_text = f"{lgd_curve[step]:7.1f}" if step < len(lgd_curve) else "      -"
        gd_text = f"{gd_curve[step]:7.1f}" if step < len(gd_curve) else "      -"
        print(f"    {step:5d}  {lgd_text}  {gd_text}")
    lgd_final = lgd_curve[config.steps]
    levels = sorted({round(lgd_curve[0] * 0.9), 100, 80, 70, math.ceil(lgd_final)}, reverse=True)
    print("  steps to reach a mean PA-MPJPE of:")
    for level in levels:
        print(
            f"    {level:4d} mm:  LGD {_steps_to(lgd_curve, level):>6}   "
            f"GD {_steps_to(gd_curve, level):>6}"
        )
    print(
        f"  final: LGD after T = {config.steps} steps {lgd_final:.1f} mm "
        f"({lgd.seconds:.2f} s for {4 * config.steps} steps); GD after {gd_steps} steps "
        f"{gd_curve[-1]:.1f} mm ({gd_run.seconds:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="bodies per evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lgd-minutes",
        type=float,
        default=2.0,
        help="LGD training wall time (default: %(default)s)",
    )
    parser.add_argument(
        "--gd-steps",
        type=int,
        default=1000,
        help="plain gradient descent steps (default: %(default)s)",
    )
    parser.add_argument(
        "--full-limits",
        action="store_true",
        help="also evaluate SMPLify on poses over the whole joint limits",
    )
    parser.add_argument("--skip-lgd", action="store_true", help="only part (a)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = SMPL()
    print(f"built-in body, CPU, {torch.get_num_threads()} thread(s)")
    print("(a) SMPLify, 2-pixel keypoint noise, goal PA-MPJPE <= 40 mm")
    smplify_quality(model, args.n, args.seed, pose_scale=0.5)
    if args.full_limits:
        smplify_quality(model, args.n, args.seed, pose_scale=1.0)
    if not args.skip_lgd:
        print("(b) learned gradient descent vs plain gradient descent")
        lgd_comparison(model, args.n, args.seed, args.lgd_minutes, args.gd_steps)


if __name__ == "__main__":
    main()
