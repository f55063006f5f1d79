"""mp3d's DDPM beside denoising-diffusion-pytorch's GaussianDiffusion on the shared MNIST
digits: the same data order, optimiser (Adam, constant lr, gradient clipping at 1), EMA of
the weights (decay 0.995 with the same warm-up), wall-time budget and DDIM sampler, a
U-Net of comparable size; reported: parameters, training steps reached, samples per
second (DDIM, ``--sample-steps`` steps, eta 0) and, when the repo's digit classifier
exists (python scripts/train_digit_classifier.py), FD of ``--fd-samples`` samples against
the evaluation digits beside the floor at that count (real training digits).

    python bench/bench_diffusion_peer.py --minutes 1            # a short run
    python bench/bench_diffusion_peer.py --minutes 10 --fd-samples 1000

Both sides: T = 1000, the linear schedule (1e-4..0.02), the registered spec's target
(velocity v; the peer's objective="pred_v") and loss weight (Min-SNR with gamma 5; the
peer's min_snr_loss_weight), images scaled to [-1, 1] inside, predicted x_0 clipped to
[-1, 1] while sampling, DDIM with ``--eta`` (0: deterministic; 1: stochastic, the
peer's ddim_sampling_eta). ``--prediction eps`` compares epsilon-predictors with the
simple loss instead. Rows: ``ours`` (the registered "ddpm": base 32, mults 1-2-2, one
res block a level, the U-Net on 2x2 pixel-unshuffled images with a full-resolution
head), ``ours-full`` (the same U-Net on full-resolution pixels), ``peer``
(Unet(dim=32, dim_mults=(1, 2, 2)): two res blocks a level, linear attention at every
level and full attention in the middle, full resolution).

denoising-diffusion-pytorch imports torchvision at the top of its module for its Trainer's
datasets; the only torchvision the registry offers for torch 2.13 here is a CUDA build that
does not load with the CPU torch, so this script runs the peer with an empty stand-in
module for torchvision (GaussianDiffusion and Unet never call it). Timings on a 2-core
machine shared with other jobs are several times slower than on a quiet one: compare rows
of one run.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

from mp3d.data.mnist import load_mnist, training_batches
from mp3d.generative import model_spec, sample_grid
from mp3d.generative.diffusion import DDPM

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
EMA_DECAY = 0.995


def import_peer():
    """denoising_diffusion_pytorch's (GaussianDiffusion, Unet), or None with the reason."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # missing, or a build that does not load with this torch
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")
        stub.utils = types.ModuleType("torchvision.utils")
        for name in ("torchvision", "torchvision.transforms", "torchvision.utils"):
            sys.modules.pop(name, None)
        sys.modules.update(
            {
                "torchvision": stub,
                "torchvision.transforms": stub.transforms,
                "torchvision.utils": stub.utils,
            }
        )
    try:
        from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    except ImportError as error:
        return None, f"denoising-diffusion-pytorch is not importable ({error})"
    return (GaussianDiffusion, Unet), None


def ema_update(ema: nn.Module, live: nn.Module, step: int) -> None:
    """The EMA mp3d's diffusion models keep: decay min(0.995, (1 + n) / (10 + n))."""
    decay = min(EMA_DECAY, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), live.parameters(), strict=True):
            e.lerp_(p, 1 - decay)


class PeerModel(nn.Module):
    """GaussianDiffusion behind mp3d's sample(n, temperature, generator, steps=...) (for
    sample_scores and sample_grid); the peer draws from the global generator, seeded here
    from the given one."""

    conditional = False

    def __init__(self, diffusion: nn.Module):
        super().__init__()
        self.diffusion = diffusion

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None, steps=None, eta=None, **conditions):
        if generator is not None:
            torch.manual_seed(int(torch.randint(0, 2**31, (), generator=generator)))
        d = self.diffusion
        d.sampling_timesteps = d.num_timesteps if steps is None else steps
        d.ddim_sampling_eta = 0.0 if eta is None else eta
        d.is_ddim_sampling = d.sampling_timesteps < d.num_timesteps
        return d.sample(batch_size=n).clamp(0, 1)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def train(step_fn, images, labels, batch_size: int, minutes: float, seed: int) -> tuple[int, float]:
    """Runs step_fn(batch, labels) over epochs of grey batches for `minutes`; (steps, s)."""
    start, steps, epoch = time.perf_counter(), 0, 0
    while True:
        for x, y in training_batches(
            images, batch_size, "grey", epoch=epoch, seed=seed, labels=labels
        ):
            step_fn(x, y, steps)
            steps += 1
            if time.perf_counter() - start > 60 * minutes:
                return steps, time.perf_counter() - start
        epoch += 1


def samples_per_second(model, n: int, steps: int, eta: float) -> float:
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model.sample(n, 1.0, generator, steps=steps, eta=eta)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per row")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the ddpm spec's")
    parser.add_argument("--lr", type=float, default=None, help="default: the ddpm spec's")
    parser.add_argument("--sample-steps", type=int, default=50, help="DDIM steps for sampling")
    parser.add_argument("--eta", type=float, default=1.0, help="DDIM noise (0: deterministic)")
    parser.add_argument(
        "--prediction",
        choices=["spec", "eps"],
        default="spec",
        help="spec: the registered ddpm's target and loss weight; eps: both predict noise",
    )
    parser.add_argument("--rate-samples", type=int, default=64, help="samples timed for /s")
    parser.add_argument("--fd-samples", type=int, default=500, help="0: no FD")
    parser.add_argument("--rows", nargs="+", default=["ours", "ours-full", "peer"])
    parser.add_argument(
        "--threads", type=int, default=1, help="1: 2 threads on a busy 2-core machine ran 5x slower"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench_out/diffusion_peer"))
    args = parser.parse_args()
    spec = model_spec("ddpm")
    args.batch_size = args.batch_size or spec.batch_size
    args.lr = args.lr or spec.lr
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(MNIST)
    classifier = None
    if args.fd_samples:
        from mp3d.generative.evaluation import load_digit_classifier, reference_fd, sample_scores

        try:
            classifier = load_digit_classifier()
            floor = reference_fd(data, classifier, args.fd_samples)
            print(f"FD floor (real training digits, n={args.fd_samples}): {floor:.2f}")
        except FileNotFoundError as error:
            print(f"no FD: {error}")
    peer, why = import_peer()
    spec_options = dict(spec.options)
    if args.prediction == "eps":
        spec_options.update(prediction="eps", min_snr=0.0)
    objective = {"eps": "pred_noise", "v": "pred_v"}[spec_options["prediction"]]
    min_snr = spec_options.get("min_snr") or None
    results = []
    for row in args.rows:
        torch.manual_seed(args.seed)
        if row in ("ours", "ours-full"):
            options = dict(spec_options)
            if row == "ours-full":
                options["patch"] = 1
            model = DDPM(**options)
            (optimizer,) = model.configure_optimizers(args.lr)
            model.train()

            def step(x, y, n, model=model, optimizer=optimizer):
                model.training_step(x, y, [optimizer], 1.0)

            params = count(model.net)
        elif row == "peer":
            if peer is None:
                print(f"peer: skipped, {why}")
                continue
            GaussianDiffusion, Unet = peer
            unet = Unet(dim=32, dim_mults=(1, 2, 2), channels=1, flash_attn=False)
            live = GaussianDiffusion(
                unet,
                image_size=28,
                timesteps=1000,
                objective=objective,
                beta_schedule="linear",
                min_snr_loss_weight=min_snr is not None,
                min_snr_gamma=min_snr or 5,
            )
            ema = copy.deepcopy(live).requires_grad_(False)
            optimizer = torch.optim.Adam(live.parameters(), lr=args.lr)
            params = count(unet)

            def step(x, y, n, live=live, ema=ema, optimizer=optimizer):
                loss = live(x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(live.parameters(), 1.0)
                optimizer.step()
                ema_update(ema, live, n)

            model = PeerModel(ema)
        else:
            raise SystemExit(f"--rows: unknown row {row!r} (ours, ours-full, peer)")
        steps, seconds = train(
            step, data.train_images, data.train_labels, args.batch_size, args.minutes, args.seed
        )
        model.eval()
        rate = samples_per_second(model, args.rate_samples, args.sample_steps, args.eta)
        result = {
            "row": row,
            "params": params,
            "steps": steps,
            "train_seconds": seconds,
            "steps_per_second": steps / seconds,
            "samples_per_second": rate,
            "sample_steps": args.sample_steps,
            "eta": args.eta,
            "objective": objective,
            "min_snr": min_snr,
        }
        if classifier is not None:
            scores = sample_scores(
                model, data, args.fd_samples, classifier, steps=args.sample_steps, eta=args.eta
            )
            result["fd"] = scores["fd"]
        sample_grid(model, args.out / f"{row}.png", 64, steps=args.sample_steps, eta=args.eta)
        results.append(result)
        print(json.dumps(result), flush=True)
    print(
        f"\n{args.minutes:g} min per row, batch {args.batch_size}, {objective}, min_snr {min_snr}, "
        f"DDIM {args.sample_steps} steps at eta {args.eta:g}"
    )
    print(f"{'row':<10}{'params':>10}{'steps':>7}{'steps/s':>9}{'samples/s':>11}{'FD':>8}")
    for r in results:
        fd = "-" if r.get("fd") is None else f"{r['fd']:.1f}"
        print(
            f"{r['row']:<10}{r['params']:>10,}{r['steps']:>7}{r['steps_per_second']:>9.2f}"
            f"{r['samples_per_second']:>11.2f}{fd:>8}"
        )
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
