"""mp3d's flows beside normflows' Glow on the shared MNIST digits, in one process: the same
dequantised training batches (mp3d.data.mnist.training_batches), optimiser (Adam, the
exponential lr decay to 0.1x and gradient clipping of train_generative), logit transform
(alpha 0.05) and wall-time budget each; then test bits/dim of the 8-bit pixels on the
1,000 evaluation images (their fixed dequantisation noise) and seconds per epoch.

    pip install normflows==1.7.3 torch==2.13.0     # pin torch on the same line
    python bench/bench_flows_peer.py                 # mp3d glow vs normflows glow, 5 min each
    python bench/bench_flows_peer.py --minutes 1 --ours glow realnvp --threads 1
    python bench/bench_flows_peer.py --elementwise 16 0   # with and without mp3d's
                                                          # per-pixel logistic-mixture CDF

The peer is normflows' multi-scale Glow (GlowBlock: actnorm, LU 1x1 convolution, affine
coupling with a sigmoid scale and a zero-initialised 3x3-1x1-3x3 ReLU network) with as many
levels, steps per level and hidden channels as mp3d's glow defaults (or --levels, --steps,
--hidden), a learned diagonal Gaussian per factored-out latent (mp3d's glow: a Gaussian
conditioned on the kept half), and normflows' Logit transform, so its log_prob is a density
on x in [0,1] like mp3d's nll. Timings on a machine shared with other jobs move a lot: read
the two rows of one run side by side, not against another run's.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from pathlib import Path

import torch

from mp3d.data.mnist import bits_per_dim, evaluation_batches, load_mnist, training_batches
from mp3d.generative import GenerativeConfig, evaluate_nll, model_spec, train_generative

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
D = 28 * 28


def normflows_glow(levels: int, steps: int, hidden: int, alpha: float = 0.05):
    """normflows' MultiscaleFlow Glow for 1x28x28 images (as its Glow example builds it)."""
    import normflows as nf

    flows, merges, q0 = [], [], []
    for i in range(levels):  # i = 0 is the coarsest scale
        channels = 2 ** (levels + 1 - i)
        level = [
            nf.flows.GlowBlock(channels, hidden, split_mode="channel", scale=True)
            for _ in range(steps)
        ]
        flows.append([*level, nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            side = 28 // 2 ** (levels - i)
            shape = (2 ** (levels - i), side, side)
        else:
            side = 28 // 2**levels
            shape = (2 ** (levels + 1), side, side)
        q0.append(nf.distributions.DiagGaussian(shape))
    return nf.MultiscaleFlow(
        q0, flows, merges, transform=nf.transforms.Logit(alpha), class_cond=False
    )


def train_peer(model, data, minutes: float, batch_size: int, lr: float, seed: int) -> dict:
    """Trains the peer on train_generative's batches and schedule for `minutes` of wall time."""
    config = GenerativeConfig()
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images = data.train_images
    per_epoch = len(images) // batch_size
    with torch.no_grad():  # normflows' ActNorm initialises itself on its first batch
        first = next(training_batches(images, batch_size, "dequantised", epoch=0, seed=seed))
        model.log_prob(first, None)
    model.train()
    budget, start, step = 60.0 * minutes, time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        epoch = step // per_epoch
        for batch in training_batches(images, batch_size, "dequantised", epoch=epoch, seed=seed):
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr * config.lr_final_factor ** (elapsed / budget)
            loss = -model.log_prob(batch, None).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
    return {"steps": step, "seconds": time.perf_counter() - start}


@torch.no_grad()
def peer_bits_per_dim(model, images, batch_size: int = 500) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in evaluation_batches(images, batch_size, "dequantised"):
        nll = -model.log_prob(batch, None).double()
        if not torch.isfinite(nll).all():
            return math.nan
        total, count = total + float(nll.sum()), count + len(nll)
    return float(bits_per_dim(torch.tensor(total / count), D))


def main() -> None:
    glow = model_spec("glow")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget each")
    parser.add_argument("--ours", nargs="+", default=["glow"], help="mp3d flows to train")
    parser.add_argument("--levels", type=int, default=glow.options["levels"])
    parser.add_argument("--steps", type=int, default=glow.options["steps"])
    parser.add_argument("--hidden", type=int, default=glow.options["hidden"])
    parser.add_argument(
        "--elementwise",
        type=int,
        nargs="+",
        default=[glow.options.get("elementwise", 0)],
        help="components of mp3d's per-pixel MixtureLogisticCDF, one run of ours per value "
        "(0: none, the peer's architecture)",
    )
    parser.add_argument("--batch-size", type=int, default=glow.batch_size)
    parser.add_argument("--lr", type=float, default=glow.lr)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=MNIST)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        raise SystemExit(f"MNIST not found at {args.data} (see shared/data/README.md)")
    data = load_mnist(args.data)
    per_epoch = len(data.train_images) // args.batch_size
    print(
        f"{data.source}; {args.minutes:g} min each, batch {args.batch_size}, lr {args.lr:g}, "
        f"{torch.get_num_threads()} threads"
    )
    rows = []
    for name, components in itertools.product(args.ours, args.elementwise):
        spec = model_spec(name)
        options = {**spec.options, "elementwise": components}
        if name == "glow":
            options.update(levels=args.levels, steps=args.steps, hidden=args.hidden)
        label = f"mp3d {name}" + (f" K={components}" if components else "")
        config = GenerativeConfig(
            model=name, steps=None, minutes=args.minutes, batch_size=args.batch_size, lr=args.lr
        )
        model = train_generative(data, config, progress=False, options=options, fresh=True)
        scores = evaluate_nll(model, data.test_images)
        stats = model.train_stats
        params = sum(p.numel() for p in model.parameters())
        rows.append((label, params, stats["steps"], stats["seconds"], scores["bits_per_dim"]))
        print(f"  {label}: {scores['bits_per_dim']:.4f} bits/dim", flush=True)
    try:
        import normflows  # noqa: F401
    except ImportError:
        print("  normflows is not installed: pip install normflows==1.7.3 torch==<your torch>")
    else:
        torch.manual_seed(args.seed)
        peer = normflows_glow(args.levels, args.steps, args.hidden)
        stats = train_peer(peer, data, args.minutes, args.batch_size, args.lr, args.seed)
        bits = peer_bits_per_dim(peer, data.test_images)
        params = sum(p.numel() for p in peer.parameters())
        rows.append(("normflows glow", params, stats["steps"], stats["seconds"], bits))
        print(f"  normflows glow: {bits:.4f} bits/dim", flush=True)
    print()
    print(f"{'model':<22}{'params':>9}{'steps':>7}{'epochs':>8}{'s/epoch':>9}{'test bits/dim':>15}")
    for label, params, steps, seconds, bits in rows:
        epochs = steps / per_epoch
        per = seconds / epochs if epochs else math.nan
        print(f"{label:<22}{params:>9}{steps:>7}{epochs:>8.2f}{per:>9.1f}{bits:>15.4f}")


if __name__ == "__main__":
    main()
