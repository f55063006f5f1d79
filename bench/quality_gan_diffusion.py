"""GANs and diffusion models on the shared MNIST digits, each trained for a fixed wall-time
budget on this machine, scored by the Fréchet distance (FD) of 1,000 samples against the
1,000 evaluation digits in the features of the repo's digit classifier, with conditional
accuracy for class-conditional models (and for guided diffusion at several guidance
weights), DDIM at 50/100/250 steps beside DDPM's 1,000 ancestral steps, the translation models
(pix2pix, CycleGAN) by L1 to the known targets of the evaluation digits and the classifier's
accuracy on their translations, and the plain vs the unrolled GAN on the 2D ring of 8
Gaussians; one table each, beside the goals of issue 14.

    python scripts/train_digit_classifier.py                 # once: the classifier FD uses
    python bench/quality_gan_diffusion.py                    # every model, 10 minutes each
    python bench/quality_gan_diffusion.py --models gan cgan --minutes 1 --ring-steps 500
    python bench/quality_gan_diffusion.py --models pix2pix cyclegan --ring-steps 0
    python bench/quality_gan_diffusion.py --models ddpm ldm --eval-steps 50 --eta 1 --ring-steps 0
    python bench/quality_gan_diffusion.py --models ddpm --eval-steps 50 --eta 1 --ddim-steps 50 \
        --ancestral-samples 0 --ring-steps 0 --threads 1     # one README row

Models: the GAN family (gan, dcgan, wgan-gp, cgan, unrolled), the translation models
(pix2pix on edge maps -> digits, cyclegan between digits and thickened digits: their
default tasks) and the diffusion models (ddpm, ddpm-cfg, ldm, ldm-cfg), those that
mp3d.generative registers; guided sampling for the conditional models whose sampler takes
``guidance``, DDIM step counts for the unconditional ones whose sampler takes ``steps``.
A diffusion model's main row and its guidance sweep sample with DDIM on ``--eval-steps``
timesteps (100 by default, as ``mp3d gen train`` scores them): ancestral sampling over all
1,000 costs ten times as long, so it appears once, in the sampling-steps table of each
unconditional model, on ``--ancestral-samples`` samples (FD grows as the sample count falls:
compare that row with the others only at equal counts). With ``--eta`` > 0 the main row
and the guidance sweep sample DDIM at that eta instead (1: stochastic, which gave the
v-predicting specs their best FD), and the sampling-steps table has a row at each eta.
Translations are scored per direction by L1 (mean per pixel, [0,1] units) and accuracy,
beside what copying the input scores and the classifier's accuracy on the true targets.
FD depends on the sample counts (see mp3d.generative.evaluation); the "real digits" row is
the floor at these counts: 1,000 training digits against the evaluation digits. Timings on
a 2-core machine shared with other jobs can be several times slower than on a quiet one:
compare rows of one run.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from mp3d.data.mnist import load_mnist
from mp3d.generative import GenerativeConfig, models, train_generative
from mp3d.generative.adversarial import train_ring_gan
from mp3d.generative.evaluation import (
    load_digit_classifier,
    mode_coverage,
    reference_fd,
    ring_centres,
    sample_scores,
)

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
GANS = ("gan", "dcgan", "wgan-gp", "cgan", "unrolled")
DIFFUSION = ("ddpm", "ddpm-cfg", "ldm", "ldm-cfg")
TRANSLATION = ("pix2pix", "cyclegan")
GUIDANCE = (0.0, 1.0, 3.0, 5.0)
DDIM_STEPS = (50, 100, 250)


def _fmt(value, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def plot_points(points: torch.Tensor, path: Path, extent: float = 3.0, size: int = 256) -> Path:
    """A scatter of 2D points [N,2] in [-extent, extent]^2 (the ring's modes as red dots)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)

    def pixel(xy):
        return ((xy[0] + extent) / (2 * extent) * size, (extent - xy[1]) / (2 * extent) * size)

    for x, y in (pixel(p) for p in points.tolist()):
        draw.point((x, y), fill=(20, 60, 160))
    for x, y in (pixel(c) for c in ring_centres().tolist()):
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(220, 30, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def plot_guidance(rows: list[tuple[float, float, float]], path: Path) -> Path:
    """Conditional accuracy (blue, 0..1) and FD (red, 0..max) against the guidance weight."""
    from PIL import Image, ImageDraw

    width, height, margin = 420, 260, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    weights = [w for w, _, _ in rows]
    top_fd = max(fd for _, _, fd in rows) or 1.0
    span = (max(weights) - min(weights)) or 1.0

    def xy(weight, value):
        x = margin + (weight - min(weights)) / span * (width - 2 * margin)
        return x, height - margin - value * (height - 2 * margin)

    draw.rectangle((margin, margin, width - margin, height - margin), outline="black")
    for series, colour in ((1, (30, 60, 200)), (2, (200, 40, 40))):
        scale = 1.0 if series == 1 else top_fd
        points = [xy(r[0], r[series] / scale) for r in rows]
        draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    for w in weights:
        draw.text((xy(w, 0)[0] - 4, height - margin + 6), f"{w:g}", fill="black")
    draw.text((margin, 10), f"accuracy (blue, 0..1), FD (red, 0..{top_fd:.0f}) vs guidance",
              fill="black")  # fmt: skip
    image.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="default: GANs, translation and diffusion models (those registered)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget each")
    parser.add_argument("--samples", type=int, default=1000, help="samples per FD")
    parser.add_argument(
        "--eval-steps", type=int, default=100, help="DDIM steps of the diffusion rows"
    )
    parser.add_argument(
        "--ancestral-samples",
        type=int,
        default=None,
        help="samples of the 1,000-step ancestral row (default: --samples; 0: skip it)",
    )
    parser.add_argument(
        "--guidance-steps",
        type=int,
        default=None,
        help="sampling steps of the guidance sweep (default: --eval-steps; 0: the full "
        "ancestral sampler, 1,000 steps)",
    )
    parser.add_argument(
        "--eta",
        type=float,
        default=0.0,
        help="> 0: the sampling-steps table also samples DDIM with this eta (1: stochastic, "
        "as DDPM's sampler)",
    )
    parser.add_argument(
        "--ddim-steps",
        type=int,
        nargs="+",
        default=list(DDIM_STEPS),
        help="DDIM step counts of the sampling-steps table",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="training batch (default: each model's)"
    )
    parser.add_argument("--ring-steps", type=int, default=5000, help="0: skip the ring")
    parser.add_argument("--ring-minutes", type=float, default=None, help="cap on each ring run")
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--out", type=Path, default=Path("bench_out/gan_diffusion"))
    parser.add_argument("--device", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        raise SystemExit(f"MNIST not found at {args.data} (see shared/data/README.md)")
    try:
        classifier = load_digit_classifier()
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    data = load_mnist(args.data)
    registered = models()
    names = args.models or [n for n in (*GANS, *TRANSLATION, *DIFFUSION) if n in registered]
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise SystemExit(f"not registered: {', '.join(unknown)} (have {', '.join(registered)})")
    ancestral = args.samples if args.ancestral_samples is None else args.ancestral_samples
    floor = reference_fd(data, classifier, min(args.samples, len(data.train_images)))
    print(
        f"{data.source}; {args.minutes:g} minutes of training per model; FD of "
        f"{args.samples} samples vs {len(data.test_images)} evaluation digits in the "
        f"classifier's {classifier.feature_dim} features (classifier accuracy "
        f"{classifier.accuracy:.2%}); real digits: FD {floor:.1f}"
    )
    rows, guidance_rows, ddim_rows, translation_rows = [], {}, {}, []
    for name in names:
        config = GenerativeConfig(
            model=name,
            steps=None,
            minutes=args.minutes,
            seed=args.seed,
            eval_steps=args.eval_steps,
            batch_size=args.batch_size,
        )
        model = train_generative(
            data, config, args.out / name, device=args.device, progress=False, fresh=True
        )
        shutil.copyfile(args.out / name / "samples.png", args.out / f"{name}.png")
        scores = model.test_scores  # with --eval-steps sampling steps where a model takes them
        steps = {"steps": args.eval_steps} if model.sampler_takes("steps") else {}
        if steps and args.eta > 0:
            steps["eta"] = args.eta
            deterministic = scores
            scores = sample_scores(model, data, args.samples, classifier, **steps)
        if "directions" in scores:  # a translation model: translation_scores
            translation_rows.append((name, model, scores))
            for direction, row in scores["directions"].items():
                print(
                    f"  {name} {direction}: L1 {row['l1']:.4f} (copy {row['copy_l1']:.4f}), "
                    f"accuracy {_fmt(row['accuracy'], '.1%')}, "
                    f"{model.train_stats['steps']} steps"
                )
            continue
        rows.append((name, model, scores))
        print(
            f"  {name}: FD {_fmt(scores['fd'])}, conditional accuracy "
            f"{_fmt(scores.get('conditional_accuracy'), '.1%')}, "
            f"{model.train_stats['steps']} steps"
        )
        if model.conditional and model.sampler_takes("guidance"):
            guidance_rows[name] = []
            count = args.eval_steps if args.guidance_steps is None else args.guidance_steps
            sweep = {**steps, "steps": count} if steps and count > 0 else {}
            sampler = f"DDIM {count} eta {sweep.get('eta', 0):g}" if sweep else "ancestral"
            print(f"    guidance sweep, {sampler} sampling:")
            for weight in GUIDANCE:
                if (
                    weight == getattr(model, "guidance", None)
                    and sweep == steps
                    and scores["fd_samples"] == args.samples
                ):
                    s = scores  # the main row drew these samples already
                else:
                    s = sample_scores(
                        model, data, args.samples, classifier, guidance=weight, **sweep
                    )
                guidance_rows[name].append((weight, s["conditional_accuracy"], s["fd"]))
                print(f"    guidance {weight:g}: {s['conditional_accuracy']:.1%}, FD {s['fd']:.1f}")
            plot_guidance(guidance_rows[name], args.out / f"{name}_guidance.png")
        if steps and not model.conditional:
            ddim_rows[name] = []
            for count in args.ddim_steps:
                if count == args.eval_steps:
                    s = deterministic if args.eta > 0 else scores
                else:
                    s = sample_scores(model, data, args.samples, classifier, steps=count)
                ddim_rows[name].append((f"DDIM {count}", s["fd_samples"], s))
                if args.eta > 0:
                    if count == args.eval_steps:
                        s = scores
                    else:
                        s = sample_scores(
                            model, data, args.samples, classifier, steps=count, eta=args.eta
                        )
                    ddim_rows[name].append((f"DDIM {count} eta {args.eta:g}", s["fd_samples"], s))
            if ancestral > 0:
                s = sample_scores(model, data, ancestral, classifier)
                ddim_rows[name].append((f"DDPM {model.timesteps}", ancestral, s))
            for sampler, count, s in ddim_rows[name]:
                print(
                    f"    {sampler}, {count} samples: FD {s['fd']:.1f}, {s['sample_seconds']:.0f} s"
                )

    print()
    print(f"{'model':<10}{'FD':>8}{'cond. acc':>11}{'steps':>8}{'train s':>9}"
          f"{'s/1k samples':>14}")  # fmt: skip
    print(f"{'real':<10}{floor:>8.1f}{'':>11}{'':>8}{'':>9}{'':>14}")
    for name, model, scores in rows:
        per_k = scores.get("sample_seconds")
        per_k = None if per_k is None else per_k * 1000 / args.samples
        print(
            f"{name:<10}{_fmt(scores['fd']):>8}"
            f"{_fmt(scores.get('conditional_accuracy'), '.1%'):>11}"
            f"{model.train_stats['steps']:>8}{model.train_stats['seconds']:>9.0f}"
            f"{_fmt(per_k, '.1f'):>14}"
        )
    if translation_rows:
        print("\ntranslation of the evaluation digits: L1 to the known target (mean per pixel,")
        print("[0,1] units) and the classifier's accuracy on the translations vs the source labels")
        print(f"{'model':<10}{'direction':<18}{'L1':>8}{'copy L1':>9}{'accuracy':>10}"
              f"{'inputs':>8}{'targets':>9}{'steps':>7}{'train s':>9}")  # fmt: skip
        for name, model, scores in translation_rows:
            for direction, row in scores["directions"].items():
                print(
                    f"{name:<10}{direction:<18}{row['l1']:>8.4f}{row['copy_l1']:>9.4f}"
                    f"{_fmt(row['accuracy'], '.1%'):>10}{_fmt(row['source_accuracy'], '.1%'):>8}"
                    f"{_fmt(row['target_accuracy'], '.1%'):>9}{model.train_stats['steps']:>7}"
                    f"{model.train_stats['seconds']:>9.0f}"
                )
    for name, table in guidance_rows.items():
        print(f"\n{name}: classifier-free guidance (accuracy / diversity trade-off)")
        print(f"{'weight':>8}{'cond. acc':>11}{'FD':>8}")
        for weight, accuracy, fd in table:
            print(f"{weight:>8g}{accuracy:>11.1%}{fd:>8.1f}")
        at3 = dict((w, a) for w, a, _ in table).get(3.0)
        if at3 is not None:
            print(f"goal: >= 95% at weight 3: {'met' if at3 >= 0.95 else 'NOT met'}")
    for name, table in ddim_rows.items():
        print(f"\n{name}: sampling steps")
        print(f"{'sampler':<17}{'samples':>8}{'FD':>8}{'seconds':>9}")
        for sampler, count, s in table:
            print(f"{sampler:<17}{count:>8}{s['fd']:>8.1f}{s['sample_seconds']:>9.1f}")
    gan_fds = [s["fd"] for n, _, s in rows if n in GANS and s["fd"] is not None]
    for name, _, scores in rows:
        if name in DIFFUSION and gan_fds and scores["fd"] is not None:
            met = scores["fd"] < min(gan_fds)
            print(f"goal: {name} FD below every GAN's ({min(gan_fds):.1f}): "
                  f"{'met' if met else 'NOT met'}")  # fmt: skip

    if args.ring_steps > 0:
        print(f"\nring of 8 Gaussians (radius 2, std 0.02), {args.ring_steps} steps, 2,500 samples")
        print(f"{'model':<10}{'modes':>7}{'high quality':>14}{'steps':>7}{'seconds':>9}")
        covered = {}
        for kind in ("gan", "unrolled"):
            samples, model = train_ring_gan(
                kind, args.ring_steps, args.seed, minutes=args.ring_minutes, return_model=True
            )
            coverage = mode_coverage(samples)
            covered[kind] = coverage["modes_hit"]
            plot_points(samples, args.out / f"ring_{kind}.png")
            print(
                f"{kind:<10}{coverage['modes_hit']:>5}/8{coverage['high_quality_fraction']:>14.1%}"
                f"{model.train_stats['steps']:>7}{model.train_stats['seconds']:>9.0f}"
                f"   per mode {coverage['counts']}"
            )
        met = covered["unrolled"] >= 7 and covered["gan"] < covered["unrolled"]
        print(f"goal: unrolled >= 7 of 8 modes, plain GAN fewer: {'met' if met else 'NOT met'}")
    print(f"\nsample grids and plots in {args.out}")


if __name__ == "__main__":
    main()
