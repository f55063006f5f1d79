"""One rank of a distributed training test, started by torchrun (see test_distributed.py).

usage: worker.py nerf|splat SCENE OUT STEPS BATCH
Trains on SCENE with the rank's share of the batch, then writes OUT/rank{R}.pt with the
trained parameters and the model's mean training-view PSNR before and after.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from mp3d import distributed
from mp3d.data.blender import load_blender
from mp3d.metrics import psnr
from mp3d.nerf import NeRFModel, TrainConfig, train
from mp3d.splat import GaussianModel, SplatConfig
from mp3d.splat import train as train_splat

TINY_NERF = dict(
    model="hash",
    n_levels=4,
    log2_table_size=10,
    finest_resolution=32,
    grid_resolution=16,
    background="white",
    log_every=1000,
    checkpoint_every=1000,
)
TINY_SPLAT = dict(
    densify_from=2,
    densify_every=5,
    sh_every=1000,
    opacity_reset_every=1000,
    ssim_weight=0.0,
    log_every=1000,
    checkpoint_every=1000,
)


def mean_psnr(model, views) -> float:
    with torch.no_grad():
        return sum(
            psnr(model.render(views.camera(i), views.background).rgb.clamp(0, 1), views.images[i])
            for i in range(len(views))
        ) / len(views)


def main() -> None:
    kind, scene, out, steps, batch = sys.argv[1:]
    out, steps, batch = Path(out), int(steps), int(batch)
    torch.set_num_threads(1)
    views = load_blender(scene, "train", progress=False)
    if kind == "nerf":
        config = TrainConfig(steps=steps, batch_rays=batch, **TINY_NERF)
        torch.manual_seed(config.seed)  # train() starts from these same weights
        before = mean_psnr(NeRFModel(config.model_spec(views)).eval(), views)
        model = train(views, config, out_dir=out / "run", device="cpu", progress=False)
        parameters = model.state_dict()
    else:
        model = GaussianModel.random_in_box(
            300,
            torch.tensor([[-1.0] * 3, [1.0] * 3]),
            torch.Generator().manual_seed(0),
            sh_degree=0,
        )
        before = mean_psnr(model, views)
        config = SplatConfig(steps=steps, **TINY_SPLAT)
        train_splat(views, model, config, out_dir=out / "run", device="cpu", progress=False)
        parameters = {name: getattr(model, name).detach() for name in model.PARAMETER_NAMES}
    after = mean_psnr(model, views)
    torch.save(
        {
            "parameters": parameters,
            "before": before,
            "after": after,
            "world_size": distributed.world_size(),
            "stats": model.train_stats,
        },
        out / f"rank{distributed.rank()}.pt",
    )
    distributed.shutdown()


if __name__ == "__main__":
    main()
