"""How much of a hash-grid NeRF training step the hash encoding takes, with the torch
reference encoding and with the compiled kernel.

Warms a model up on the lego scene (or the built-in demo scene when lego is absent) so the
occupancy grid is realistic, then times training steps with each encoding implementation,
and the encoding's own forward+backward on the very points of a step.

    python bench/profile_nerf_step.py [--warmup 300] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds  # noqa: E402
from quality_nerf_lego import LEGO, config_for  # noqa: E402

from mp3d.cameras import invert_rigid  # noqa: E402
from mp3d.data.blender import load_blender  # noqa: E402
from mp3d.data.demo import write_demo_scene  # noqa: E402
from mp3d.nerf.model import NeRFModel  # noqa: E402
from mp3d.nerf.trainer import _optimizer, _train_step  # noqa: E402
from mp3d.ops.hash_encoding import hash_encode  # noqa: E402


def load_scene(downscale: int):
    if (LEGO / "transforms_train.json").is_file():
        return "lego", load_blender(LEGO, "train", downscale, progress=False)
    scene = write_demo_scene(Path(tempfile.mkdtemp()) / "demo", progress=False)
    return "demo", load_blender(scene, "train", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downscale", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=300, help="training steps before timing")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per implementation")
    args = parser.parse_args()
    device = torch.device("cpu")
    name, data = load_scene(args.downscale)
    config = config_for("cpu", minutes=None, steps=10**6)
    model = NeRFModel(config.model_spec(data))
    optimizer = _optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    model.grid.carve(data.Ks, invert_rigid(data.c2ws), data.alphas)
    for step in range(args.warmup):
        if step % config.grid_update_every == 0:
            model.grid.update(model.field.density, model.step_size, generator=generator)
        _train_step(model, optimizer, data, config, generator, device)

    encoding = model.field.encoding
    calls = []  # (points, grad enabled) of every encoding call in the last step
    encoding.register_forward_pre_hook(
        lambda module, inputs: calls.append((inputs[0].detach(), torch.is_grad_enabled()))
    )
    print(
        f"{name} {data.width}px, {config.batch_rays} rays/step, after {args.warmup} warm-up steps"
    )
    print(f"{'encoding':>9} {'step ms':>9} {'encoding ms':>12} {'share':>7} {'points':>8}")
    for impl in ("torch", "cpp"):
        encoding.impl = impl
        times = []
        for _ in range(args.steps):
            calls.clear()
            start = time.perf_counter()
            _train_step(model, optimizer, data, config, generator, device)
            times.append(time.perf_counter() - start)
        table = encoding.embeddings.detach().clone().requires_grad_()

        def replay(table=table, impl=impl):
            """The step's encoding calls again: culling pass forward only, shading both ways."""
            table.grad = None
            for points, grad in calls:
                with torch.set_grad_enabled(grad):
                    features = hash_encode(
                        points, table, encoding.resolutions, encoding.offsets, impl=impl
                    )
                    if grad:
                        features.sum().backward()

        step_s = statistics.median(times)
        encode_s = median_seconds(replay, device, repeats=5, warmup=1)
        n_points = "+".join(str(points.shape[0]) for points, _ in calls)
        print(
            f"{impl:>9} {step_s * 1e3:>9.1f} {encode_s * 1e3:>12.1f} "
            f"{100 * encode_s / step_s:>6.1f}% {n_points:>8}"
        )


if __name__ == "__main__":
    main()
