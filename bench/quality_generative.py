"""Generative models on the shared MNIST digits: each registered model trained for a fixed
wall-time budget on this machine, then its test NLL on the 1,000 evaluation images (nats
per image on binarised digits; bits/dim on dequantised digits for the flows), in one table
beside the published figures (60,000 training images and long training: not comparable
budgets) and the goals of issue 13, with a sample grid of each model.

    python bench/quality_generative.py                      # every model, 5 minutes each
    python bench/quality_generative.py --models made pixelcnn --minutes 2
    python bench/quality_generative.py --out docs/samples   # where the grids go
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mp3d.data.mnist import load_mnist
from mp3d.generative import GenerativeConfig, models, sample_grid, train_generative

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
# Published test NLLs on MNIST (binarised: nats per image; dequantised: bits/dim).
PUBLISHED = {
    "nade": "88.9 nats (Larochelle & Murray 2011)",
    "made": "88.0 nats (Germain et al. 2015, ensemble of masks)",
    "pixelcnn": "81.3 nats (van den Oord et al. 2016)",
    "realnvp": "1.06 bits/dim (as reported for MNIST)",
    "glow": "1.05 bits/dim (as reported for MNIST)",
}
AUTOREGRESSIVE = ("fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn", "wavenet", "transformer")
GOALS = {
    "pixelcnn": ("nats", 95.0),
    "gated-pixelcnn": ("nats", 95.0),
    "vae": ("nats", 100.0),
    "nice": ("bits_per_dim", 1.5),
    "realnvp": ("bits_per_dim", 1.5),
    "glow": ("bits_per_dim", 1.5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="default: every model")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget each")
    parser.add_argument("--data", type=Path, default=MNIST)
    parser.add_argument("--out", type=Path, default=Path("bench_out/generative"))
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest on a shared CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        raise SystemExit(f"MNIST not found at {args.data} (see shared/data/README.md)")
    data = load_mnist(args.data)
    # Models without a likelihood (GANs, diffusion) are scored by bench/quality_gan_diffusion.py.
    names = args.models or [name for name, spec in models().items() if spec.view != "grey"]
    print(f"{data.source}; {args.minutes:g} min of training per model, {args.threads} thread(s)")
    rows = []
    for name in names:
        start = time.perf_counter()
        config = GenerativeConfig(model=name, steps=None, minutes=args.minutes)
        model = train_generative(
            data, config, args.out / name, device=args.device, progress=False, fresh=True
        )
        sample_grid(model, args.out / f"{name}.png", 64)
        scores = model.test_scores
        rows.append((name, model, scores, time.perf_counter() - start))
        print(f"  {name}: {scores['nats']:.2f} nats, {scores['bits_per_dim']:.4f} bits/dim")
    mixture = next((s["nats"] for n, _, s, _ in rows if n == "bernoulli-mixture"), None)
    print()
    print(f"{'model':<18}{'test NLL':>22}  {'kind':<6}{'steps':>7}{'time':>8}  published / goal")
    for name, model, scores, seconds in rows:
        if model.view == "dequantised":
            value = f"{scores['bits_per_dim']:.4f} bits/dim"
        else:
            value = f"{scores['nats']:.2f} nats"
        notes = [PUBLISHED.get(name, "")]
        if name in GOALS:
            key, goal = GOALS[name]
            met = scores[key] <= goal
            notes.append(f"goal <= {goal:g}: {'met' if met else 'NOT met'}")
        if name in AUTOREGRESSIVE and mixture is not None:
            notes.append(f"{mixture - scores['nats']:.1f} nats below the Bernoulli mixture")
        steps = model.train_stats["steps"]
        print(
            f"{name:<18}{value:>22}  {scores['nll_kind']:<6}{steps:>7}{seconds:>7.0f}s  "
            + "; ".join(n for n in notes if n)
        )
    print(f"\nsample grids: {args.out}/MODEL.png")


if __name__ == "__main__":
    main()
