"""DeepSDF (Park et al. 2019): one decoder for a whole family of shapes, each shape a latent
code, trained as an auto-decoder.

The decoder f_theta(z, x) maps a code z [c] and a point x [3] (the unit cube of
mp3d.implicit.shape_set) to the signed distance there (negative inside). There is no
encoder: every training shape i owns a code z_i (an nn.Embedding row, drawn from
N(0, code_init_std^2)) that is optimised jointly with theta, so a shape's code is whatever
makes the decoder reproduce it. A new shape's code is found the same way with theta frozen.

Training loss, per step, over B shapes and n SDF samples (x_j, s_j) of each (most drawn
near the surface, ShapeSamples.near, the rest uniform in the padded cube):

    mean_j |clamp(f(z_i, x_j), delta) - clamp(s_j, delta)|  +  code_reg * mean_i ||z_i||^2

with clamp(v, delta) = min(delta, max(-delta, v)) and delta = 0.1 (the paper's), which
spends the decoder's capacity near the surface. The code term is the paper's Gaussian prior
on codes (eq. 9: (1/sigma^2) ||z||^2), weighted against the per-sample mean L1 as in the
released code, whose term lambda * sum_samples ||z|| / n_samples (lambda = 1e-4) is lambda
times the mean code norm over the batch. That code differs in three details we do not
follow: it uses the unsquared norm ||z||, ramps lambda up over the first 100 epochs and
bounds codes to norm 1 (Embedding max_norm), and it draws codes from N(0, 1/c) rather than
the paper's N(0, 0.01^2). Here: the squared norm, code_reg = 1e-4, no ramp, no bound, and
the paper's init std 0.01.

Inference (the paper's eq. 10) optimises only a new code against a shape's SDF samples,
points [N,3] and sdf [N]: infer_code minimises the same clamped L1 plus
infer_code_reg * ||z||^2 by Adam from N(0, 0.01^2), sub-sampling infer_samples points per
iteration, the learning rate dropping tenfold halfway, as the released reconstruct.py does
(800 iterations of 8000 samples at lr 5e-3 there; fewer here, for the CPU).
infer_code_from_cloud does it from a (partial) point cloud [N,3]: its points have sdf 0,
and points at +-eps along the (given or estimated) outward normals have sdf +-eps, as the
paper does for depth-image completion.

The decoder is the paper's MLP: weight-normalised linear layers with ReLU, the input [z, x]
joined again at a middle layer, optional dropout, tanh on the output. Its defaults are
sized for a CPU (64-d codes, 6 layers of 256, no dropout) rather than the paper's (256-d
codes, 8 layers of 512, dropout 0.2). Fields (`DeepSDFDecoder.field(code)`) map points
[N,3] -> sdf [N], so mp3d.implicit.evaluation scores them with DEEPSDF_LEVEL and
DEEPSDF_INSIDE like any other field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from mp3d.training import (
    CHECKPOINT_NAME,
    TrainerConfig,
    TrainingRun,
    check_float,
    check_int,
    resolve_device,
)

__all__ = [
    "DEEPSDF_INSIDE",
    "DEEPSDF_LEVEL",
    "DeepSDFConfig",
    "DeepSDFDecoder",
    "DeepSDFField",
    "DeepSDFModel",
    "clamped_l1",
    "estimate_normals",
    "infer_code",
    "infer_code_from_cloud",
    "load_deepsdf",
    "train_deepsdf",
]

FORMAT, VERSION = "mp3d.deepsdf", 1
DEEPSDF_LEVEL = 0.0  # the surface is the zero level set
DEEPSDF_INSIDE = "below"  # negative inside


def clamped_l1(prediction: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """mean |clamp(prediction, delta) - clamp(target, delta)| of two [N] tensors (DeepSDF's
    eq. 4; clamp to [-delta, delta]), a scalar."""
    return (prediction.clamp(-delta, delta) - target.clamp(-delta, delta)).abs().mean()


# ----------------------------------------------------------------------------- the model


class DeepSDFDecoder(nn.Module):
    """f: points [N,3] and codes [N,c] -> signed distance [N]: `layers` weight-normalised
    linear layers of `hidden` units with ReLU (dropout after each when dropout > 0), the
    input [code, xyz] joined again before layer `skip`, then a linear output and tanh."""

    def __init__(
        self,
        latent_size: int = 64,
        hidden: int = 256,
        layers: int = 6,
        skip: int = 3,
        dropout: float = 0.0,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        check_int("latent_size", latent_size, 1)
        check_int("hidden", hidden, 1)
        check_int("layers", layers, 2)
        check_int("skip", skip, 1, layers - 1)
        check_float("dropout", dropout, 0.0, 1.0)
        self.latent_size, self.skip, self.dropout = latent_size, skip, dropout
        width_in = latent_size + 3
        self.linears = nn.ModuleList()
        for i in range(layers):
            # The paper narrows the layer before the skip to 512 - width_in; we widen the
            # skip layer's input instead, so any hidden size works with any code size.
            inputs = width_in if i == 0 else hidden + (width_in if i == skip else 0)
            linear = nn.Linear(inputs, hidden)
            if weight_norm:
                linear = nn.utils.parametrizations.weight_norm(linear)
            self.linears.append(linear)
        self.output = nn.Linear(hidden, 1)
        # PyTorch's default bias, up to 1/sqrt(hidden), can start every prediction beyond the
        # clamp (0.1), where the clamped L1 has no gradient: the decoder would never learn.
        # A zero bias starts it near 0 (the ReLU layers shrink what reaches the output).
        nn.init.zeros_(self.output.bias)
        if weight_norm:
            self.output = nn.utils.parametrizations.weight_norm(self.output)

    def forward(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if points.dim() != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must have shape [N, 3], got {list(points.shape)}")
        if codes.dim() == 1:
            codes = codes.expand(len(points), -1)
        if codes.shape != (len(points), self.latent_size):
            raise ValueError(
                f"codes must have shape [N={len(points)}, {self.latent_size}] (or "
                f"[{self.latent_size}]), got {list(codes.shape)}"
            )
        inputs = torch.cat([codes, points], dim=-1)
        x = inputs
        for i, linear in enumerate(self.linears):
            if i == self.skip:
                x = torch.cat([x, inputs], dim=-1)
            x = torch.relu(linear(x))
            if self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout, self.training)
        return torch.tanh(self.output(x))[..., 0]

    def field(self, code: torch.Tensor) -> DeepSDFField:
        """The shape of code [c] as a module points [N,3] -> sdf [N], in eval mode (which
        puts this decoder in eval mode too: it is shared, not copied)."""
        return DeepSDFField(self, code).eval()


class DeepSDFField(nn.Module):
    """One shape of a decoder: points [N,3] (unit cube) -> signed distance [N]."""

    def __init__(self, decoder: DeepSDFDecoder, code: torch.Tensor) -> None:
        super().__init__()
        code = torch.as_tensor(code).detach()
        if code.shape != (decoder.latent_size,):
            raise ValueError(
                f"code must have shape [{decoder.latent_size}], got {list(code.shape)}"
            )
        self.decoder = decoder
        param = next(decoder.parameters())
        self.register_buffer("code", code.to(param.device, param.dtype).clone())

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.decoder(points.to(self.code.dtype), self.code)


class DeepSDFModel(nn.Module):
    """A trained auto-decoder: the decoder, one code per training shape (codes.weight
    [K,c]) and the shapes' names; `config` is the DeepSDFConfig it was built from."""

    def __init__(self, config: DeepSDFConfig, names: Sequence[str]) -> None:
        super().__init__()
        self.config = config
        self.names = [str(name) for name in names]
        self.decoder = config.make_decoder()
        self.codes = nn.Embedding(len(self.names), config.latent_size)
        nn.init.normal_(self.codes.weight, 0.0, config.code_init_std)
        self.train_stats: dict[str, float] = {}
        self.losses: list[float] = []  # every training step's loss, resumed runs included

    def index(self, shape: int | str) -> int:
        """The row of a training shape, given by its index or its name."""
        if isinstance(shape, str):
            if shape not in self.names:
                raise KeyError(f"no training shape named {shape!r}")
            return self.names.index(shape)
        return check_int("shape", shape, 0, len(self.names) - 1)

    def code(self, shape: int | str) -> torch.Tensor:
        """The trained code [c] of a training shape (index or name), detached."""
        return self.codes.weight[self.index(shape)].detach()

    def field(self, shape: int | str | torch.Tensor) -> DeepSDFField:
        """A training shape (index or name) or any code [c] as a field points [N,3] ->
        sdf [N], in eval mode."""
        code = shape if isinstance(shape, torch.Tensor) else self.code(shape)
        return self.decoder.field(code)

    def forward(self, points: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """sdf [N] at points [N,3] of the training shapes indices [N] (long)."""
        return self.decoder(points, self.codes(indices))


# ----------------------------------------------------------------------------- config


@dataclass
class DeepSDFConfig(TrainerConfig):
    """How to train a DeepSDF auto-decoder and infer codes (defaults sized for a few CPU
    minutes; the paper's values in comments)."""

    steps: int | None = 2000
    latent_size: int = 64  # paper: 256
    hidden: int = 256  # paper: 512
    layers: int = 6  # paper: 8
    skip: int = 3  # paper: the input joins again before layer 4 of 8
    dropout: float = 0.0  # paper: 0.2 on every layer
    weight_norm: bool = True
    clamp: float = 0.1  # delta of the clamped L1 (paper: 0.1)
    code_reg: float = 1e-4  # weight of mean ||z||^2, relative to the per-sample L1
    code_init_std: float = 0.01  # paper: N(0, 0.01^2)
    lr: float = 1e-3  # decoder (paper: 5e-4 for 64 shapes x 16384 samples a batch)
    lr_codes: float = 2e-3  # codes (paper: 1e-3)
    lr_final_factor: float = 0.1  # both decay exponentially to this factor over the run
    shapes_per_batch: int = 8  # paper: 64 (released specs: 8)
    samples_per_shape: int = 1024  # paper: 16384
    uniform_fraction: float = 0.2  # of each shape's samples, the rest near the surface
    infer_iterations: int = 300  # paper's code: 800
    infer_lr: float = 5e-3  # paper's code: 5e-3, dropped tenfold halfway
    infer_samples: int = 2048  # per iteration (paper's code: 8000)
    infer_code_reg: float = 1e-4  # weight of ||z||^2 at inference
    checkpoint_every: int = 500
    log_every: int = 50

    def validate(self) -> None:
        super().validate()
        check_int("latent_size", self.latent_size, 1, 4096)
        check_int("hidden", self.hidden, 1, 8192)
        check_int("layers", self.layers, 2, 64)
        check_int("skip", self.skip, 1, self.layers - 1)
        check_float("dropout", self.dropout, 0.0, 0.9)
        if not isinstance(self.weight_norm, bool):
            raise ValueError(f"weight_norm must be a bool, got {self.weight_norm!r}")
        check_float("clamp", self.clamp, 0.0, 1.0, exclusive_minimum=True)
        check_float("code_reg", self.code_reg, 0.0)
        check_float("code_init_std", self.code_init_std, 0.0)
        check_float("lr", self.lr, 0.0, exclusive_minimum=True)
        check_float("lr_codes", self.lr_codes, 0.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_int("shapes_per_batch", self.shapes_per_batch, 1)
        check_int("samples_per_shape", self.samples_per_shape, 2, 1 << 20)
        check_float("uniform_fraction", self.uniform_fraction, 0.0, 1.0)
        check_int("infer_iterations", self.infer_iterations, 1)
        check_float("infer_lr", self.infer_lr, 0.0, exclusive_minimum=True)
        check_int("infer_samples", self.infer_samples, 1, 1 << 22)
        check_float("infer_code_reg", self.infer_code_reg, 0.0)

    def make_decoder(self) -> DeepSDFDecoder:
        """The untrained decoder this config describes."""
        return DeepSDFDecoder(
            self.latent_size, self.hidden, self.layers, self.skip, self.dropout, self.weight_norm
        )


# ----------------------------------------------------------------------------- training


class _Pool:
    """Every shape's samples in flat tensors, drawn from per shape without Python loops."""

    def __init__(self, shapes: Sequence, device: torch.device) -> None:
        def flat(part: str):
            points, sdf, counts = [], [], []
            for shape in shapes:
                span = shape.near if part == "near" else shape.uniform
                points.append(np.asarray(shape.points[span], dtype=np.float32))
                sdf.append(np.asarray(shape.sdf[span], dtype=np.float32))
                counts.append(len(points[-1]))
            counts_t = torch.tensor(counts, dtype=torch.long)
            offsets = torch.cumsum(counts_t, 0) - counts_t
            return (
                torch.as_tensor(np.concatenate(points), device=device),
                torch.as_tensor(np.concatenate(sdf), device=device),
                offsets,
                counts_t,
            )

        self.near = flat("near")
        self.uniform = flat("uniform")
        self.device = device

    def draw(
        self, part: str, shapes: torch.Tensor, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points [B*n,3] and sdf [B*n] of n random samples of each of the shapes [B]."""
        points, sdf, offsets, counts = self.near if part == "near" else self.uniform
        u = torch.rand(len(shapes), n, generator=generator)
        index = offsets[shapes, None] + (u * counts[shapes, None]).long()
        index = index.reshape(-1).to(self.device)
        return points[index], sdf[index]


def _check_shapes(shapes) -> list[str]:
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence) or not shapes:
        raise ValueError("shapes must be a non-empty sequence of ShapeSamples")
    names = []
    for i, shape in enumerate(shapes):
        for attribute in ("name", "points", "sdf", "n_uniform"):
            if not hasattr(shape, attribute):
                raise ValueError(f"shapes[{i}] is not a ShapeSamples (it has no {attribute})")
        n_points = len(shape.points)
        if len(shape.sdf) != n_points:
            raise ValueError(
                f"shapes[{i}] ({shape.name}): {n_points} points but {len(shape.sdf)} sdf values"
            )
        if not 0 < shape.n_uniform < n_points:
            raise ValueError(
                f"shapes[{i}] ({shape.name}): needs uniform and near-surface samples, got "
                f"n_uniform={shape.n_uniform} of {n_points} points"
            )
        if not (np.isfinite(shape.points).all() and np.isfinite(shape.sdf).all()):
            raise ValueError(f"shapes[{i}] ({shape.name}): points and sdf must be finite")
        names.append(str(shape.name))
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"shapes must have distinct names; repeated: {', '.join(twice)}")
    return names


def train_deepsdf(
    shapes: Sequence,
    config: DeepSDFConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
) -> DeepSDFModel:
    """Trains a DeepSDF auto-decoder on a shape set (ShapeSamples, e.g. build_shape_set);
    returns the DeepSDFModel (eval mode, with .train_stats and .losses, one a step). With
    out_dir: checkpoints there, resumed from (refused when made from other shapes) unless
    `fresh`."""
    config = config if config is not None else DeepSDFConfig()
    if not isinstance(config, DeepSDFConfig):
        raise ValueError(f"config must be a DeepSDFConfig, got {type(config).__name__}")
    names = _check_shapes(shapes)
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = DeepSDFModel(config, names)
    meta = {
        "shapes": len(names),
        "names": names,
        "samples": [int(len(shape.points)) for shape in shapes],
    }
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta=meta,
        desc="training DeepSDF",
        progress=progress,
        fresh=fresh,
        kind="DeepSDF",
    )
    payload = run.resume()
    model.to(device)
    optimizer = torch.optim.Adam(
        [
            {"params": model.decoder.parameters(), "lr": config.lr},
            {"params": model.codes.parameters(), "lr": config.lr_codes},
        ]
    )
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    if payload is not None:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        losses = [float(value) for value in payload.get("losses", [])]
    pool = _Pool(shapes, device)
    batch = min(config.shapes_per_batch, len(names))
    n_uniform = round(config.samples_per_shape * config.uniform_fraction)
    n_near = config.samples_per_shape - n_uniform

    def payload_now() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "losses": list(losses),
        }

    model.train()
    while run.running():
        factor = config.lr_final_factor**run.progress
        optimizer.param_groups[0]["lr"] = config.lr * factor
        optimizer.param_groups[1]["lr"] = config.lr_codes * factor
        chosen = torch.randperm(len(names), generator=generator)[:batch]
        parts = [pool.draw("near", chosen, n_near, generator)] if n_near else []
        if n_uniform:
            parts.append(pool.draw("uniform", chosen, n_uniform, generator))
        # Per shape: its near samples, then its uniform ones (the order does not matter).
        points = torch.cat([p.reshape(batch, -1, 3) for p, _ in parts], 1).reshape(-1, 3)
        target = torch.cat([s.reshape(batch, -1) for _, s in parts], 1).reshape(-1)
        rows = chosen.to(device)
        codes = model.codes(rows)  # [B,c]
        per_sample = codes.repeat_interleave(config.samples_per_shape, dim=0)
        sdf_loss = clamped_l1(model.decoder(points, per_sample), target, config.clamp)
        loss = sdf_loss + config.code_reg * codes.pow(2).sum(-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        run.advance(loss=losses[-1], sdf=float(sdf_loss.detach()))
        if run.checkpoint_due():
            run.save(payload_now())
    model.train_stats = run.finish(payload_now())
    optimizer.zero_grad(set_to_none=True)  # leave no gradients on the returned model
    model.losses = losses
    return model.eval()


def load_deepsdf(path: str | Path, device=None) -> DeepSDFModel:
    """The DeepSDFModel of a checkpoint written by train_deepsdf (the file, or the out_dir
    holding checkpoint.pt), in eval mode; errors name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    from mp3d.io import read_checkpoint

    payload = read_checkpoint(path, FORMAT, VERSION, "DeepSDF")
    try:
        config = DeepSDFConfig(**payload["config"])
        model = DeepSDFModel(config, payload["meta"]["names"])
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: not a usable DeepSDF checkpoint ({error})") from error
    model.train_stats = {"steps": int(payload.get("step", 0))}
    model.losses = [float(value) for value in payload.get("losses", [])]
    return model.to(resolve_device(device)).eval()


# ----------------------------------------------------------------------------- inference


def _array(name: str, value, columns: int | None) -> np.ndarray:
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real array, got dtype {array.dtype}")
    array = array.astype(np.float32)
    expected = "[N>0, 3]" if columns else "[N>0]"
    ok = array.ndim == 2 and array.shape[1] == columns if columns else array.ndim == 1
    if not ok or len(array) == 0:
        raise ValueError(f"{name} must have shape {expected}, got {list(array.shape)}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite entries")
    return array


def _decoder_and_config(decoder, config) -> tuple[DeepSDFDecoder, DeepSDFConfig]:
    if isinstance(decoder, DeepSDFModel):
        config = config if config is not None else decoder.config
        decoder = decoder.decoder
    if not isinstance(decoder, DeepSDFDecoder):
        raise ValueError(
            f"decoder must be a DeepSDFDecoder or DeepSDFModel, got {type(decoder).__name__}"
        )
    config = config if config is not None else DeepSDFConfig()
    if not isinstance(config, DeepSDFConfig):
        raise ValueError(f"config must be a DeepSDFConfig, got {type(config).__name__}")
    return decoder, config


def infer_code(
    decoder: DeepSDFDecoder | DeepSDFModel,
    points,
    sdf,
    config: DeepSDFConfig | None = None,
    seed: int = 0,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    """The code [c] of a new shape from its SDF samples, points [N,3] (unit cube) and sdf
    [N], by optimising only the code with the decoder frozen (its parameters, gradients
    and train/eval mode are left as they were). config (default: the model's own) gives
    clamp and the infer_* settings; the code starts from `init` [c] or N(0, 0.01^2)."""
    decoder, config = _decoder_and_config(decoder, config)
    points_np = _array("points", points, 3)
    sdf_np = _array("sdf", sdf, None)
    if len(sdf_np) != len(points_np):
        raise ValueError(
            f"sdf must have one value per point: {len(points_np)} points, {len(sdf_np)} sdf values"
        )
    check_int("seed", seed, 0)
    param = next(decoder.parameters())
    device, dtype = param.device, param.dtype
    xyz = torch.as_tensor(points_np, device=device, dtype=dtype)
    target = torch.as_tensor(sdf_np, device=device, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    if init is None:
        start = torch.randn(decoder.latent_size, generator=generator) * 0.01
    else:
        start = torch.as_tensor(init).detach().float().cpu()
        if start.shape != (decoder.latent_size,):
            raise ValueError(
                f"init must have shape [{decoder.latent_size}], got {list(start.shape)}"
            )
    code = start.to(device, dtype).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([code], lr=config.infer_lr)
    n = min(config.infer_samples, len(xyz))
    half = max(config.infer_iterations // 2, 1)

    was_training = decoder.training
    needs_grad = [p.requires_grad for p in decoder.parameters()]
    decoder.eval()
    for p in decoder.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad(), parametrize.cached():
            for iteration in range(config.infer_iterations):
                optimizer.param_groups[0]["lr"] = config.infer_lr * 0.1 ** (iteration // half)
                if n < len(xyz):
                    index = torch.randint(len(xyz), (n,), generator=generator).to(device)
                    batch_points, batch_sdf = xyz[index], target[index]
                else:
                    batch_points, batch_sdf = xyz, target
                loss = clamped_l1(decoder(batch_points, code), batch_sdf, config.clamp)
                loss = loss + config.infer_code_reg * code.pow(2).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    finally:
        for p, flag in zip(decoder.parameters(), needs_grad, strict=True):
            p.requires_grad_(flag)
        decoder.train(was_training)
    return code.detach()


def estimate_normals(cloud, neighbours: int = 16) -> np.ndarray:
    """Unit normals [N,3] of a point cloud [N,3]: for each point, the direction of least
    variance of its `neighbours` nearest points (PCA), turned to point away from the
    cloud's centroid. Right for star-shaped clouds (a sphere, a convex part, a half seen
    from one side); points in deep concavities can come out flipped."""
    from scipy.spatial import cKDTree

    points = _array("cloud", cloud, 3).astype(np.float64)
    if len(points) < 3:
        raise ValueError(
            f"cloud must have at least 3 points to estimate normals, got {len(points)}"
        )
    k = min(check_int("neighbours", neighbours, 3), len(points))
    _, index = cKDTree(points).query(points, k)
    local = points[index] - points[index].mean(axis=1, keepdims=True)  # [N,k,3]
    covariance = np.einsum("nki,nkj->nij", local, local)
    _, vectors = np.linalg.eigh(covariance)  # eigenvalues ascending
    normals = vectors[:, :, 0]
    outward = points - points.mean(axis=0)
    normals *= np.where((normals * outward).sum(axis=1) < 0, -1.0, 1.0)[:, None]
    return normals.astype(np.float32)


def infer_code_from_cloud(
    decoder: DeepSDFDecoder | DeepSDFModel,
    cloud,
    normals=None,
    config: DeepSDFConfig | None = None,
    seed: int = 0,
    eps: float = 0.01,
    neighbours: int = 16,
) -> torch.Tensor:
    """The code [c] of a shape seen as a (possibly partial) point cloud [N,3] in the unit
    cube of the training shapes: the cloud's points have sdf 0, and points at +-eps along
    the outward unit normals [N,3] (given, or estimate_normals with `neighbours`) have sdf
    +-eps, as the paper's depth-image completion; then infer_code on those 3N samples."""
    points = _array("cloud", cloud, 3)
    check_float("eps", eps, 0.0, 0.5, exclusive_minimum=True)
    if normals is None:
        normals = estimate_normals(points, neighbours)
    else:
        normals = _array("normals", normals, 3)
        if normals.shape != points.shape:
            raise ValueError(
                f"normals must have the cloud's shape {list(points.shape)}, "
                f"got {list(normals.shape)}"
            )
        lengths = np.linalg.norm(normals, axis=1, keepdims=True)
        if not (lengths > 1e-8).all():
            raise ValueError("normals must be non-zero vectors")
        normals = normals / lengths
    samples = np.concatenate([points, points + eps * normals, points - eps * normals])
    values = np.concatenate(
        [np.zeros(len(points)), np.full(len(points), eps), np.full(len(points), -eps)]
    )
    return infer_code(decoder, samples, values.astype(np.float32), config, seed)
