"""Occupancy Networks (Mescheder et al. 2019) for point-cloud completion: a learned shape
space that maps a sparse noisy point cloud of a shape to its occupancy field.

Architecture (as ONet's `pointnet_resnet` encoder and `cbatchnorm` decoder):

- Encoder, a ResNet PointNet: cloud [B,T,3] -> fc to 2h -> ResNet fc block (2h -> h) ->
  then, `encoder_blocks - 1` times, max pool over the T points, concatenate the pooled
  feature to every point's (-> 2h) and a ResNet fc block (2h -> h) -> a final max pool over
  the points -> ReLU -> fc to the code [B,c]. Only per-point maps and max pools: the code
  does not depend on the order of the cloud's points (nor on duplicated points).
- Decoder: points [B,P,3] -> fc to h -> `blocks` conditional ResNet blocks (CBN -> ReLU ->
  fc -> CBN -> ReLU -> fc, plus the identity) -> CBN -> ReLU -> fc to one occupancy logit
  [B,P]. The code conditions the decoder only through conditional batch norm (CBN): each
  CBN layer normalises its features [B,P,h] by batch norm without an affine part
  (statistics per feature over all B*P points of the batch while training, running averages
  in eval mode) and then applies a gain and a bias predicted from the shape's code by two
  linear maps, gamma(c), beta(c) [B,h], shared by all of that shape's points. The gain maps
  start at weight 0, bias 1 and the bias maps at 0 (plain batch norm at the start), and the
  last fc of every ResNet block starts at zero (each block starts as the identity).

Loss: binary cross-entropy of the logits against the ground-truth occupancy of query
points, averaged over points and shapes (ONet sums over points; with Adam only the scale of
the loss differs). Each step takes `shapes_per_batch` shapes, and for each, `query_points`
labelled points (a `near_fraction` of them from the shape's near-surface set, the rest from
its uniform set in the padded unit cube) and a new input cloud: `cloud_points` points
drawn from its surface samples plus Gaussian noise of std `cloud_noise` (ONet: 300 points,
0.005, in the same unit cube). After the last step, batch norm's running statistics are
set afresh to their plain average over `bn_recalibration` training batches at the final
weights ("precise BN"): the momentum average over the last steps lags behind weights that
were still moving, and eval mode, which every field uses, depends on those statistics.

Data: mp3d.implicit.shape_set.ShapeSamples (unit cube, labelled by winding number).
A trained model turns a new cloud into a field, points [N,3] -> logits [N], with
reconstruct_onet; its surface is at ONET_LEVEL (probability 0.2, ONet's threshold), inside
above it, which mp3d.implicit.evaluation.shape_metrics and field_mesh take.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mp3d.io import read_checkpoint
from mp3d.training import TrainerConfig, TrainingRun, check_float, check_int, resolve_device

__all__ = [
    "ONET_INSIDE",
    "ONET_LEVEL",
    "ONET_THRESHOLD",
    "ConditionalBatchNorm",
    "ONetConfig",
    "OccupancyField",
    "OccupancyNetwork",
    "load_onet",
    "reconstruct_onet",
    "train_onet",
]

FORMAT, VERSION = "mp3d.onet", 1
ONET_THRESHOLD = 0.2  # ONet's evaluation threshold on the occupancy probability
ONET_LEVEL = math.log(ONET_THRESHOLD / (1.0 - ONET_THRESHOLD))  # the same on logits: -1.386
ONET_INSIDE = "above"  # logits above ONET_LEVEL are inside


# ----------------------------------------------------------------------------- layers


class ResnetBlockFC(nn.Module):
    """x [..., size_in] -> [..., size_out]: x (linearly mapped if the widths differ) plus
    fc(ReLU(fc(ReLU(x)))), the second fc starting at zero."""

    def __init__(self, size_in: int, size_out: int, size_h: int | None = None) -> None:
        super().__init__()
        size_h = min(size_in, size_out) if size_h is None else size_h
        self.fc_0 = nn.Linear(size_in, size_h)
        self.fc_1 = nn.Linear(size_h, size_out)
        self.shortcut = None if size_in == size_out else nn.Linear(size_in, size_out, bias=False)
        nn.init.zeros_(self.fc_1.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.fc_1(F.relu(self.fc_0(F.relu(x))))
        return (x if self.shortcut is None else self.shortcut(x)) + dx


class ConditionalBatchNorm(nn.Module):
    """CBN: features x [B,P,f] and codes c [B,c_dim] -> gamma(c) * BN(x) + beta(c) [B,P,f],
    BN without its own affine part (statistics per feature over all B*P points in training,
    running averages in eval mode), gamma and beta linear in the code, starting at 1 and 0."""

    def __init__(self, c_dim: int, features: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.gamma = nn.Linear(c_dim, features)
        self.beta = nn.Linear(c_dim, features)
        self.norm = nn.BatchNorm1d(features, affine=False, momentum=momentum)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        batch, points, features = x.shape
        normalised = self.norm(x.reshape(batch * points, features)).reshape(x.shape)
        return self.gamma(c)[:, None, :] * normalised + self.beta(c)[:, None, :]


class CResnetBlock(nn.Module):
    """x [B,P,h], c [B,c_dim] -> [B,P,h]: x + fc(ReLU(CBN(fc(ReLU(CBN(x, c))), c))), the
    last fc starting at zero (ONet's CResnetBlockConv1d, with Linear for the 1x1 convs)."""

    def __init__(self, c_dim: int, size: int) -> None:
        super().__init__()
        self.bn_0 = ConditionalBatchNorm(c_dim, size)
        self.bn_1 = ConditionalBatchNorm(c_dim, size)
        self.fc_0 = nn.Linear(size, size)
        self.fc_1 = nn.Linear(size, size)
        nn.init.zeros_(self.fc_1.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        net = self.fc_0(F.relu(self.bn_0(x, c)))
        return x + self.fc_1(F.relu(self.bn_1(net, c)))


class ResnetPointNet(nn.Module):
    """The ResNet PointNet encoder: clouds [B,T,3] -> codes [B,c_dim] (see the module
    docstring); invariant to the order of the T points."""

    def __init__(self, c_dim: int = 128, hidden: int = 128, blocks: int = 5) -> None:
        super().__init__()
        self.fc_pos = nn.Linear(3, 2 * hidden)
        self.blocks = nn.ModuleList(ResnetBlockFC(2 * hidden, hidden) for _ in range(blocks))
        self.fc_c = nn.Linear(hidden, c_dim)

    def forward(self, cloud: torch.Tensor) -> torch.Tensor:
        net = self.blocks[0](self.fc_pos(cloud))
        for block in self.blocks[1:]:
            pooled = net.max(dim=1, keepdim=True).values.expand_as(net)
            net = block(torch.cat([net, pooled], dim=-1))
        return self.fc_c(F.relu(net.max(dim=1).values))


class CBNDecoder(nn.Module):
    """The conditional batch-norm decoder: points [B,P,3] and codes [B,c_dim] -> occupancy
    logits [B,P] (ONet's DecoderCBatchNorm without its latent z)."""

    def __init__(self, c_dim: int = 128, hidden: int = 128, blocks: int = 5) -> None:
        super().__init__()
        self.fc_p = nn.Linear(3, hidden)
        self.blocks = nn.ModuleList(CResnetBlock(c_dim, hidden) for _ in range(blocks))
        self.bn = ConditionalBatchNorm(c_dim, hidden)
        self.fc_out = nn.Linear(hidden, 1)

    def forward(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        net = self.fc_p(points)
        for block in self.blocks:
            net = block(net, codes)
        return self.fc_out(F.relu(self.bn(net, codes)))[..., 0]


# ----------------------------------------------------------------------------- the model


def _check_tensor(name: str, value: torch.Tensor, shape: str, batch: int | None = None) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {shape}, got {type(value).__name__}")
    if value.dim() != 3 or value.shape[-1] != 3 or value.shape[1] == 0:
        raise ValueError(f"{name} must have shape {shape}, got {list(value.shape)}")
    if batch is not None and value.shape[0] != batch:
        raise ValueError(f"{name} has {value.shape[0]} shapes but codes have {batch}")


class OccupancyNetwork(nn.Module):
    """ONet for point-cloud completion: a ResNet PointNet encoder of clouds [B,T,3] to codes
    [B,latent] and a CBN decoder of points [B,P,3] with codes to occupancy logits [B,P]
    (see the module docstring). `cloud_points` is the cloud size it is trained on, which
    reconstruct_onet subsamples new clouds to."""

    def __init__(
        self,
        latent: int = 128,
        hidden: int = 128,
        blocks: int = 5,
        encoder_hidden: int = 128,
        encoder_blocks: int = 5,
        cloud_points: int = 300,
    ) -> None:
        super().__init__()
        self.options = {
            "latent": latent,
            "hidden": hidden,
            "blocks": blocks,
            "encoder_hidden": encoder_hidden,
            "encoder_blocks": encoder_blocks,
            "cloud_points": cloud_points,
        }
        self.latent, self.cloud_points = latent, cloud_points
        self.encoder = ResnetPointNet(latent, encoder_hidden, encoder_blocks)
        self.decoder = CBNDecoder(latent, hidden, blocks)

    def encode(self, cloud: torch.Tensor) -> torch.Tensor:
        """Codes [B,latent] of point clouds [B,T,3] (unit cube)."""
        _check_tensor("cloud", cloud, "[B, T>0, 3]")
        return self.encoder(cloud)

    def decode(self, points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Occupancy logits [B,P] at points [B,P,3] (unit cube) of the shapes of codes
        [B,latent]."""
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or codes.shape[1] != self.latent:
            got = list(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"codes must have shape [B, {self.latent}], got {got}")
        _check_tensor("points", points, "[B, P>0, 3]", len(codes))
        return self.decoder(points, codes)

    def forward(self, points: torch.Tensor, cloud: torch.Tensor) -> torch.Tensor:
        """Occupancy logits [B,P] at points [B,P,3] of the shapes of clouds [B,T,3]."""
        return self.decode(points, self.encode(cloud))

    def field(self, code: torch.Tensor) -> OccupancyField:
        """The field of one shape's code [latent] (or [1,latent]): points [N,3] -> logits
        [N], decoded in eval mode; the model is put in eval mode."""
        code = code.detach().reshape(-1)
        if code.numel() != self.latent:
            raise ValueError(f"code must have {self.latent} values, got {code.numel()}")
        self.eval()
        return OccupancyField(self, code).eval()


class OccupancyField(nn.Module):
    """points [N,3] (unit cube) -> occupancy logits [N] of one shape: the model's decoder
    at a fixed code, always in eval mode (batch norm by its running statistics, so a point's
    value does not depend on the other points evaluated with it)."""

    def __init__(self, model: OccupancyNetwork, code: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("code", code.to(next(model.parameters()).device))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != 3:
            got = list(points.shape) if isinstance(points, torch.Tensor) else type(points)
            raise ValueError(f"points must have shape [N, 3], got {got}")
        if len(points) == 0:
            return points.new_zeros(0)
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model.decode(points[None], self.code[None])[0]
        finally:
            self.model.train(was_training)


# ----------------------------------------------------------------------------- training


@dataclass
class ONetConfig(TrainerConfig):
    """How to train an occupancy network on a shape set (defaults sized for a few CPU
    minutes; ONet's own: latent 512, encoder width 512, decoder width 256, 64 shapes of
    2048 points per step, lr 1e-4 for days on a GPU)."""

    steps: int | None = 1000
    latent: int = 128  # code size c
    hidden: int = 128  # decoder width
    blocks: int = 5  # decoder CBN ResNet blocks
    encoder_hidden: int = 128  # encoder width h (its blocks take 2h)
    encoder_blocks: int = 5
    cloud_points: int = 300  # T, as ONet
    cloud_noise: float = 0.005  # std of the Gaussian noise added to the cloud, as ONet
    query_points: int = 1024  # labelled points per shape per step (ONet: 2048)
    near_fraction: float = 0.5  # the share of them taken from the near-surface samples
    shapes_per_batch: int = 16  # B (ONet: 64)
    lr: float = 2e-3  # 300 steps of bench/quality_onet.py: unseen IoU 0.37 at 5e-4, 0.42 at
    # 1e-3, 0.53 at 2e-3, 0.37 at 4e-3 (ONet's 1e-4 is for hundreds of thousands of steps)
    lr_final_factor: float = 0.1  # lr decays exponentially to lr * this at the budget's end
    bn_recalibration: int = 32  # batches that set batch norm's running statistics at the end
    checkpoint_every: int = 500
    log_every: int = 25

    def validate(self) -> None:
        super().validate()
        check_int("latent", self.latent, 1, 4096)
        check_int("hidden", self.hidden, 1, 4096)
        check_int("blocks", self.blocks, 0, 64)
        check_int("encoder_hidden", self.encoder_hidden, 1, 4096)
        check_int("encoder_blocks", self.encoder_blocks, 1, 64)
        check_int("cloud_points", self.cloud_points, 1, 1 << 20)
        check_float("cloud_noise", self.cloud_noise, 0.0, 1.0)
        check_int("query_points", self.query_points, 1, 1 << 22)
        check_float("near_fraction", self.near_fraction, 0.0, 1.0)
        check_int("shapes_per_batch", self.shapes_per_batch, 1, 1 << 16)
        check_float("lr", self.lr, 0.0, 1.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_int("bn_recalibration", self.bn_recalibration, 0, 100_000)

    @property
    def model_options(self) -> dict[str, int]:
        """The OccupancyNetwork keyword arguments this config describes."""
        return {
            "latent": self.latent,
            "hidden": self.hidden,
            "blocks": self.blocks,
            "encoder_hidden": self.encoder_hidden,
            "encoder_blocks": self.encoder_blocks,
            "cloud_points": self.cloud_points,
        }

    @property
    def near_queries(self) -> int:
        """How many of the query_points of a shape come from its near-surface set."""
        return round(self.query_points * self.near_fraction)


class _PackedShapes:
    """The shapes' surface samples and labelled points concatenated on one device, with
    per-shape offsets, so a batch is drawn by index arithmetic (shapes may differ in size)."""

    def __init__(self, shapes, device: torch.device) -> None:
        def flat(arrays, dtype):
            return torch.as_tensor(np.concatenate(arrays), dtype=dtype, device=device)

        def offsets(counts):
            return torch.as_tensor(np.cumsum([0, *counts[:-1]]), device=device)

        surface_counts = [len(s.surface) for s in shapes]
        point_counts = [len(s.points) for s in shapes]
        self.surface = flat([s.surface for s in shapes], torch.float32)
        self.points = flat([s.points for s in shapes], torch.float32)
        self.occupancy = flat([s.occupancy for s in shapes], torch.float32)
        self.surface_start = offsets(surface_counts)
        self.surface_count = torch.as_tensor(surface_counts, device=device)
        starts = offsets(point_counts)
        self.uniform_start = starts
        self.uniform_count = torch.as_tensor([s.n_uniform for s in shapes], device=device)
        self.near_start = starts + self.uniform_count
        self.near_count = torch.as_tensor(point_counts, device=device) - self.uniform_count
        self.n = len(shapes)

    @staticmethod
    def _draw(start, count, n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(len(start), n, generator=generator).to(start.device)
        index = (u * count[:, None]).long().minimum(count[:, None] - 1)
        return start[:, None] + index

    def batch(self, config: ONetConfig, generator: torch.Generator):
        """(clouds [B,T,3], query points [B,Q,3], occupancy [B,Q] as 0/1 floats)."""
        b = config.shapes_per_batch
        if self.n >= b:
            chosen = torch.randperm(self.n, generator=generator)[:b]
        else:
            chosen = torch.randint(self.n, (b,), generator=generator)
        chosen = chosen.to(self.surface.device)
        index = self._draw(
            self.surface_start[chosen], self.surface_count[chosen], config.cloud_points, generator
        )
        noise = torch.randn(*index.shape, 3, generator=generator).to(self.surface.device)
        cloud = self.surface[index] + config.cloud_noise * noise
        n_near = config.near_queries
        parts = []
        if n_near:
            parts.append(
                self._draw(self.near_start[chosen], self.near_count[chosen], n_near, generator)
            )
        if config.query_points - n_near:
            parts.append(
                self._draw(
                    self.uniform_start[chosen],
                    self.uniform_count[chosen],
                    config.query_points - n_near,
                    generator,
                )
            )
        queries = torch.cat(parts, dim=1)
        return cloud, self.points[queries], self.occupancy[queries]


@torch.no_grad()
def recalibrate_batch_norm(
    model: OccupancyNetwork, data: _PackedShapes, config: ONetConfig, seed: int
) -> bool:
    """Sets the running statistics of every batch norm to their plain average over
    config.bn_recalibration training batches at the final weights ("precise BN"), in place
    of the momentum average over the last steps, which lags behind weights that moved;
    whether there were any to set."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or config.bn_recalibration == 0:
        return False
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(config.bn_recalibration):
        cloud, queries, _ = data.batch(config, generator)
        model(queries, cloud)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.eval()
    return True


def _check_shapes(shapes, config: ONetConfig) -> None:
    from mp3d.implicit.shape_set import ShapeSamples

    if isinstance(shapes, ShapeSamples) or not isinstance(shapes, Sequence) or not shapes:
        raise ValueError("shapes must be a non-empty sequence of ShapeSamples")
    for i, shape in enumerate(shapes):
        if not isinstance(shape, ShapeSamples):
            raise ValueError(f"shapes[{i}] must be a ShapeSamples, got {type(shape).__name__}")
        if len(shape.surface) == 0:
            raise ValueError(f"shapes[{i}] ({shape.name}): has no surface points")
        if config.near_queries and len(shape.points) <= shape.n_uniform:
            raise ValueError(
                f"shapes[{i}] ({shape.name}): has no near-surface points, but "
                f"near_fraction is {config.near_fraction}"
            )
        if config.query_points - config.near_queries and shape.n_uniform == 0:
            raise ValueError(
                f"shapes[{i}] ({shape.name}): has no uniform points, but near_fraction "
                f"is {config.near_fraction}"
            )


def shape_set_meta(shapes: Sequence) -> dict:
    """What identifies a training set in a checkpoint: its shapes' count and names and a
    digest of their samples (so a run resumed on other data is refused)."""
    digest = hashlib.sha1()
    for shape in shapes:
        for array in (shape.surface, shape.points, shape.occupancy):
            digest.update(np.ascontiguousarray(array).tobytes())
    return {
        "shape_count": len(shapes),
        "shape_names": [shape.name for shape in shapes],
        "shape_digest": digest.hexdigest(),
    }


def train_onet(
    shapes: Sequence,
    config: ONetConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
) -> OccupancyNetwork:
    """Trains an occupancy network on a sequence of ShapeSamples (see the module
    docstring); returns it in eval mode with .train_stats and .train_losses (this session's
    per-step losses). With out_dir: checkpoints there and resumes from one (refusing a
    checkpoint made from other shapes)."""
    config = config if config is not None else ONetConfig()
    if not isinstance(config, ONetConfig):
        raise ValueError(f"config must be an ONetConfig, got {type(config).__name__}")
    _check_shapes(shapes, config)
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = OccupancyNetwork(**config.model_options)
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta=shape_set_meta(shapes),
        desc="training ONet",
        progress=progress,
        fresh=fresh,
        kind="ONet",
    )
    payload = run.resume()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    if payload is not None:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
    data = _PackedShapes(shapes, device)

    def payload_now() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "model_options": dict(model.options),
        }

    losses: list[float] = []
    model.train()
    while run.running():
        for group in optimizer.param_groups:
            group["lr"] = config.lr * config.lr_final_factor**run.progress
        cloud, queries, labels = data.batch(config, generator)
        logits = model(queries, cloud)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        run.advance(loss=losses[-1])
        if run.checkpoint_due():
            run.save(payload_now())
    # Its own generator, seeded by the step: a resumed run ends as an uninterrupted one.
    if recalibrate_batch_norm(model, data, config, seed=config.seed * 1_000_003 + run.step):
        run.save(payload_now())  # even when the last step's checkpoint was just written
    model.train_stats = run.finish(payload_now())
    model.train_losses = losses
    return model.eval()


def load_onet(path: str | Path, device=None) -> OccupancyNetwork:
    """The OccupancyNetwork in a train_onet checkpoint file, in eval mode (with
    .train_stats: steps and seconds); errors name the file."""
    path = Path(path)
    payload = read_checkpoint(path, FORMAT, VERSION, "ONet")
    try:
        model = OccupancyNetwork(**payload["model_options"])
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"{path}: not a complete ONet checkpoint ({error})") from error
    model.train_stats = {"steps": int(payload["step"]), "seconds": float(payload["elapsed"])}
    return model.to(resolve_device(device)).eval()


def reconstruct_onet(model: OccupancyNetwork, cloud, seed: int = 0) -> OccupancyField:
    """The occupancy field (points [N,3] -> logits [N], unit cube) of the shape seen as a
    point cloud [N,3] (numpy or torch, unit cube): the cloud is subsampled to the model's
    cloud_points without replacement when larger, drawn with replacement when smaller
    (which max pooling makes the same as the cloud itself); no noise is added."""
    if not isinstance(model, OccupancyNetwork):
        raise ValueError(f"model must be an OccupancyNetwork, got {type(model).__name__}")
    check_int("seed", seed, 0)
    try:
        array = np.asarray(
            cloud.detach().cpu().numpy() if isinstance(cloud, torch.Tensor) else cloud,
            dtype=np.float32,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"cloud must be an array of points [N, 3] ({error})") from error
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"cloud must have shape [N, 3], got {list(array.shape)}")
    if len(array) == 0:
        raise ValueError("cloud is empty: it must hold at least one point [N>0, 3]")
    if not np.isfinite(array).all():
        raise ValueError("cloud must be finite (it holds NaN or infinite coordinates)")
    rng = np.random.default_rng(seed)
    wanted = model.cloud_points
    index = rng.choice(len(array), wanted, replace=len(array) < wanted)
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        code = model.encode(torch.as_tensor(array[index], device=device)[None])[0]
    return model.field(code)
