"""Image-to-image translation on the digits: pix2pix (paired) and CycleGAN (unpaired), on
the tasks of mp3d.data.digit_pairs, where the target of every translation is known.

Both work on grey digits [B,1,28,28] in [0,1] (the "grey" view); their networks work in
[-1,1] (x -> 2 x - 1), and generators end in tanh. A generator is the shared U-Net
(mp3d.nn.UNet: residual blocks with GroupNorm, 28 -> 14 -> 7 and back, skips at every
level) followed by tanh; a discriminator is a PatchGAN (``PatchDiscriminator``): a few 4x4
convolutions that end in a map of logits, one per overlapping patch, each patch judged real
or fake on its own (16x16-pixel patches, a 12x12 map, with the default single stride-2
layer: the 70x70 PatchGAN of pix2pix scaled to 28-pixel digits).

- "pix2pix" (Isola et al. 2017): G maps the task's input (an edge map, or the top half) to
  the digit; D sees the input paired with an image, cat([input, image]) [B,2,28,28], and
  is trained by binary cross-entropy on (input, digit) as real and (input, G(input)) as fake,
  its loss halved as in the paper; G minimises the non-saturating loss -log D(input,
  G(input)) + l1_weight (100) |G(input) - digit|_1 (mean, in [-1,1] units). Adam betas
  (0.5, 0.999); D batch norm (as the paper).
- "cyclegan" (Zhu et al. 2017): G_AB (digits -> domain B), G_BA (B -> digits), D_A, D_B;
  least-squares GAN losses (D: (D(real) - 1)^2 + D(fake)^2, halved; G: (D(G(x)) - 1)^2),
  cycle-consistency cycle_weight (10) (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1) and
  identity cycle_weight * identity_weight (0.5) (|G_AB(b) - b|_1 + |G_BA(a) - a|_1); D
  updated on a history of pool_size (50) generated images (the paper's image pool); instance
  norm in D. A batch is x [B,2,28,28]: channel 0 domain A digits, channel 1 domain B images
  made from *other* digits (mp3d.data.digit_pairs.unpaired_batches: A from the first half
  of the training images, B from the second), so no pair is ever shown.

Training (through mp3d.generative.train_generative): ``configure_optimizers(lr)`` gives
[Adam over the generator(s), Adam over the discriminator(s)]; each ``training_step`` is one
update of each. The registered learning rate is 1e-3, not the papers' 2e-4 (at batch 1):
in short runs on a busy 2-core CPU (1 thread, batch 32 / 16, 200 evaluation digits),
pix2pix on edges reached L1 0.031 and 98% accuracy after 60 steps at 1e-3 against 0.167 and
8% at 2e-4 (0.014 and 99.5% after 150 steps at 1e-3; on "half" 0.069 and 81% after 60, the
inputs alone 0.089 and 46%), and CycleGAN on thicken L1 0.146 / 0.141 after 30 steps at
1e-3 against 0.230 / 0.205 at 2e-4. Scalars returned: "loss" (G's whole objective), its
parts, "d_loss" and D's mean outputs.

Evaluation (``translation_scores``) translates the evaluation digits' known pairs in each
direction and reports, per direction: "l1", the mean |translation - target| per pixel in
[0,1] units; "accuracy", the fraction of translations (read as digits: inverted images
inverted back) the repo's digit classifier (mp3d.generative.evaluation) assigns to the
source digit's class; beside them "copy_l1" and "source_accuracy" (what the untranslated
input scores) and "target_accuracy" (what the known targets score: the ceiling).
"""

from __future__ import annotations

import contextlib
import math
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.data.digit_pairs import (
    PAIRED_TASKS,
    UNPAIRED_TASKS,
    as_digits,
    check_task,
    domain_images,
    unpaired_batches,
)
from mp3d.generative.adversarial import _dcgan_init
from mp3d.generative.base import GenerativeModel, ModelSpec
from mp3d.nn import UNet
from mp3d.training import check_choice, check_float, check_int

__all__ = [
    "SPECS",
    "CycleGAN",
    "Direction",
    "ImagePool",
    "PatchDiscriminator",
    "Pix2Pix",
    "TranslationModel",
    "UNetGenerator",
    "lsgan_loss",
    "translation_panels",
    "translation_scores",
]

DIGITS = (1, 28, 28)
NORMS = ("batch", "instance")


class Direction(NamedTuple):
    """One direction a model translates: its name and the domains (see
    mp3d.data.digit_pairs.DOMAINS) of its sources and targets."""

    name: str
    source: str
    target: str


# ----------------------------------------------------------------------------- networks


class UNetGenerator(nn.Module):
    """[B,1,H,W] in [-1,1] -> [B,1,H,W] in [-1,1]: mp3d.nn.UNet, then tanh."""

    def __init__(
        self,
        base_channels: int = 16,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("base_channels", base_channels, 1, 1024)
        check_int("n_res_blocks", n_res_blocks, 1, 16)
        check_float("dropout", dropout, 0.0, 0.9)
        mults = tuple(channel_mults)
        if not mults or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in mults):
            raise ValueError(f"channel_mults must be a non-empty list of ints >= 1, got {mults}")
        self.unet = UNet(1, 1, base_channels, mults, n_res_blocks, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.unet(x))


class PatchDiscriminator(nn.Module):
    """A PatchGAN: images [B,in,H,W] in [-1,1] -> logits [B,1,H',W'], one per patch.

    ``n_layers`` stride-2 4x4 convolutions (width, 2 width, ... channels, capped at 8 width;
    no norm on the first), one stride-1 4x4 convolution with norm, then a stride-1 4x4
    convolution to one channel, LeakyReLU(0.2) between (pix2pix's layout). Each logit sees
    a ``receptive_field``-pixel square: 7 for n_layers = 0 (26x26 logits on 28x28 images),
    16 for 1 (12x12 logits), 34 for 2 (5x5), 70 for 3 (1x1: pix2pix's 70x70 PatchGAN).
    """

    def __init__(
        self, in_channels: int, width: int = 32, n_layers: int = 1, norm: str = "batch"
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1, 64)
        check_int("width", width, 1, 1024)
        check_int("n_layers", n_layers, 0, 3)  # 3: one logit for a 28x28 image
        check_choice("norm", norm, NORMS)

        def norm_layer(channels: int) -> nn.Module:
            if norm == "batch":
                return nn.BatchNorm2d(channels)
            return nn.InstanceNorm2d(channels)  # CycleGAN's: no affine, no running stats

        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(n_layers + 1):
            out = width * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers.append(nn.Conv2d(channels, out, 4, stride, 1, bias=i == 0))
            if i > 0:
                layers.append(norm_layer(out))
            layers.append(nn.LeakyReLU(0.2))
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.apply(_dcgan_init)  # N(0, 0.02) weights, as pix2pix and CycleGAN initialise

    @property
    def receptive_field(self) -> int:
        """The side in pixels of the input square each output logit depends on."""
        field, jump = 1, 1
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):
                field += (layer.kernel_size[0] - 1) * jump
                jump *= layer.stride[0]
        return field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape [B, {self.in_channels}, H, W], got {list(x.shape)}"
            )
        return self.net(x)


def lsgan_loss(logits: torch.Tensor, target: float) -> torch.Tensor:
    """The least-squares GAN loss mean((logits - target)^2) (Mao et al. 2017): target 1 for
    images to be called real, 0 for fakes."""
    return (logits - target).square().mean()


class ImagePool(nn.Module):
    """CycleGAN's history of generated images (Shrivastava et al. 2017): D is shown, for each
    new fake, the fake itself while fewer than ``size`` are stored; after that, with
    probability 1/2 a stored one (replaced by the new one), else the new one. size 0 passes
    every fake through. The stored images travel with the state dict, so a resumed run
    continues with the same history."""

    def __init__(self, size: int = 50) -> None:
        super().__init__()
        self.size = check_int("pool_size", size, 0, 10_000)
        self.images: torch.Tensor | None = None  # [k,C,H,W], k <= size

    def query(self, fakes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The images [B,C,H,W] D should see for this batch of (detached) fakes [B,C,H,W];
        the random choices are drawn from `generator` (a CPU generator)."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        # a copy: the stored tensor may be shared with a state dict taken earlier
        stored = self.images.to(fakes, copy=True) if self.images is not None else fakes[:0]
        out = []
        for fake in fakes:
            if len(stored) < self.size:
                stored = torch.cat([stored, fake[None]])
                out.append(fake)
            elif float(torch.rand((), generator=generator)) < 0.5:
                j = int(torch.randint(self.size, (), generator=generator))
                out.append(stored[j].clone())
                stored[j] = fake
            else:
                out.append(fake)
        self.images = stored
        return torch.stack(out)

    def get_extra_state(self) -> dict:
        return {"images": self.images if self.images is not None else torch.zeros(0)}

    def set_extra_state(self, state: dict) -> None:
        images = state["images"]
        self.images = images.clone() if images.numel() else None


def _check_batch(x: object, name: str = "x", channels: int = 1, what: str = "") -> None:
    """ValueError naming `name` unless x is a float batch [B, channels, 28, 28]."""
    if (
        not isinstance(x, torch.Tensor)
        or x.dim() != 4
        or tuple(x.shape[1:]) != (channels, *DIGITS[1:])
        or not x.is_floating_point()
    ):
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be float images [B, {channels}, 28, 28]{what}, got {got}")


@contextlib.contextmanager
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """No gradients for the modules' parameters inside (a D while its G steps)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _step(loss: torch.Tensor, params: list, optimizer, grad_clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()


# ----------------------------------------------------------------------------- models


class TranslationModel(GenerativeModel):
    """Base of the translation models: they map images of one domain to another
    (``translate``) along their ``directions`` (the first is the main one, whose scores
    ``translation_scores`` reports at the top level). ``sample`` translates the ``sources``
    it is given; there is nothing to draw without them."""

    view = "grey"
    nll_kind = None
    image_shape = DIGITS
    betas = (0.5, 0.999)
    directions: tuple[Direction, ...] = ()
    task: str = ""

    def direction(self, name: str | None = None) -> Direction:
        """The Direction called `name` (None: the main one); ValueError listing them."""
        if name is None:
            return self.directions[0]
        for direction in self.directions:
            if direction.name == name:
                return direction
        names = tuple(d.name for d in self.directions)
        raise ValueError(f"direction must be one of {names}, got {name!r}")

    @abstractmethod
    def generator_for(self, direction: Direction) -> nn.Module:
        """The generator network that translates along `direction`."""

    def translate(self, sources: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        """Images sources [B,1,28,28] in [0,1] of the direction's source domain ->
        translations [B,1,28,28] in [0,1] (differentiable; call under no_grad to score)."""
        _check_batch(sources, "sources")
        generator = self.generator_for(self.direction(direction))
        return ((generator(sources * 2 - 1) + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sources: torch.Tensor | None = None,
        direction: str | None = None,
    ) -> torch.Tensor:
        """The translations [n,1,28,28] in [0,1] of sources [n,1,28,28] (required: a
        translation model maps images, it draws none); temperature and generator are unused
        (the generators are deterministic in eval mode)."""
        check_int("n", n, 0)
        if sources is None:
            raise ValueError(
                f"sources is required: {type(self).__name__} translates images [n, 1, 28, 28] "
                f"of its source domain (see mp3d.generative.translation.translation_panels)"
            )
        _check_batch(sources, "sources")
        if len(sources) != n:
            raise ValueError(f"sources must hold n={n} images, got {len(sources)}")
        return self.translate(sources.to(self._device()), direction)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @staticmethod
    def to_model_space(x: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] -> the networks' [-1,1]."""
        return x * 2 - 1


class Pix2Pix(TranslationModel):
    """pix2pix on a paired digit task (see the module docstring): ``task`` "edges" (edge map
    -> digit) or "half" (top half -> digit); G a UNetGenerator of ``base_channels`` x
    ``channel_mults`` (``dropout`` in its blocks: pix2pix's noise; 0 by default, as the
    input fixes the digit here), D a PatchDiscriminator of 2 channels (input, image)."""

    def __init__(
        self,
        task: str = "edges",
        base_channels: int = 16,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        dropout: float = 0.0,
        d_width: int = 32,
        d_layers: int = 1,
        l1_weight: float = 100.0,
    ) -> None:
        super().__init__()
        self.task = check_task(task, tuple(PAIRED_TASKS))
        self.l1_weight = check_float("l1_weight", l1_weight, 0.0)
        check_int("d_width", d_width, 1, 1024)
        check_int("d_layers", d_layers, 0, 3)
        self.generator = UNetGenerator(base_channels, channel_mults, n_res_blocks, dropout)
        self.discriminator = PatchDiscriminator(2, d_width, d_layers, "batch")
        self.directions = (Direction(f"{task}->digit", task, "digit"),)

    def generator_for(self, direction: Direction) -> nn.Module:
        return self.generator

    def discriminate(self, inputs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """D's patch logits [B,1,h,w] of images [B,1,28,28] given the inputs they were made
        from [B,1,28,28], both in [-1,1]: D sees the pair cat([inputs, images], 1)."""
        return self.discriminator(torch.cat([inputs, images], 1))

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """[Adam over G, Adam over D] at lr, betas (0.5, 0.999)."""
        return [
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=self.betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=self.betas),
        ]

    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        grad_clip: float = 0.0,
    ) -> dict[str, float]:
        """One D then one G update on digits x [B,1,28,28] in [0,1] and the task's inputs
        made from them; "g_l1" is the mean |G(input) - digit| in [0,1] units."""
        _check_batch(x, "x", 1, " (digits in [0, 1])")
        if len(optimizers) != 2:
            raise ValueError(f"optimizers must be [G's, D's], got {len(optimizers)}")
        g_optimizer, d_optimizer = optimizers
        inputs = self.to_model_space(domain_images(self.task, x))
        real = self.to_model_space(x)
        fake = self.generator(inputs)

        real_logits = self.discriminate(inputs, real)
        fake_logits = self.discriminate(inputs, fake.detach())
        d_loss = 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())
        _step(d_loss, list(self.discriminator.parameters()), d_optimizer, grad_clip)

        with _frozen(self.discriminator):
            adversarial = F.softplus(-self.discriminate(inputs, fake)).mean()
        l1 = (fake - real).abs().mean()
        g_loss = adversarial + self.l1_weight * l1
        _step(g_loss, list(self.generator.parameters()), g_optimizer, grad_clip)
        return {
            "loss": float(g_loss.detach()),
            "g_adv": float(adversarial.detach()),
            "g_l1": float(l1.detach()) / 2,
            "d_loss": float(d_loss.detach()),
            "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()),
        }


class CycleGAN(TranslationModel):
    """CycleGAN between the digits (domain A) and their ``task`` map (domain B: "thicken" or
    "invert"), see the module docstring; G_AB and G_BA UNetGenerators, D_A and D_B
    one-channel PatchDiscriminators with instance norm."""

    def __init__(
        self,
        task: str = "thicken",
        base_channels: int = 16,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        d_width: int = 32,
        d_layers: int = 1,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.5,
        pool_size: int = 50,
    ) -> None:
        super().__init__()
        self.task = check_task(task, tuple(UNPAIRED_TASKS))
        self.cycle_weight = check_float("cycle_weight", cycle_weight, 0.0)
        self.identity_weight = check_float("identity_weight", identity_weight, 0.0)
        check_int("d_width", d_width, 1, 1024)
        check_int("d_layers", d_layers, 0, 3)
        self.g_ab = UNetGenerator(base_channels, channel_mults, n_res_blocks)
        self.g_ba = UNetGenerator(base_channels, channel_mults, n_res_blocks)
        self.d_a = PatchDiscriminator(1, d_width, d_layers, "instance")
        self.d_b = PatchDiscriminator(1, d_width, d_layers, "instance")
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.directions = (
            Direction(f"digit->{task}", "digit", task),
            Direction(f"{task}->digit", task, "digit"),
        )
        # The pools' random choices: their own generator, saved with the state dict.
        self.noise_generator = torch.Generator().manual_seed(
            int(torch.randint(1 << 62, (), dtype=torch.int64))
        )

    def get_extra_state(self) -> dict:
        return {"noise_generator": self.noise_generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.noise_generator.set_state(state["noise_generator"])

    def generator_for(self, direction: Direction) -> nn.Module:
        return self.g_ab if direction.source == "digit" else self.g_ba

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """[Adam over G_AB and G_BA, Adam over D_A and D_B] at lr, betas (0.5, 0.999)."""
        generators = [*self.g_ab.parameters(), *self.g_ba.parameters()]
        discriminators = [*self.d_a.parameters(), *self.d_b.parameters()]
        return [
            torch.optim.Adam(generators, lr=lr, betas=self.betas),
            torch.optim.Adam(discriminators, lr=lr, betas=self.betas),
        ]

    def epoch_batches(self, images, labels, batch_size: int, epoch: int, seed: int):
        """One epoch of unpaired batches (mp3d.data.digit_pairs.unpaired_batches): x
        [B,2,28,28] (A digits, B images of other digits), labels [B,2]."""
        return unpaired_batches(
            images, batch_size, self.task, epoch=epoch, seed=seed, labels=labels
        )

    def batches_per_epoch(self, n_images: int, batch_size: int) -> int:
        return n_images // 2 // batch_size

    def cycle_loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """mean |G_BA(G_AB(a)) - a| + mean |G_AB(G_BA(b)) - b| of a and b [B,1,28,28] in
        [-1,1]: 0 exactly when the generators invert each other on a and b."""
        return self._cycle(a, b)[0]

    def _cycle(self, a, b):
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        loss = (self.g_ba(fake_b) - a).abs().mean() + (self.g_ab(fake_a) - b).abs().mean()
        return loss, fake_b, fake_a

    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        grad_clip: float = 0.0,
    ) -> dict[str, float]:
        """One update of both generators, then of both discriminators (on pooled fakes), on
        an unpaired batch x [B,2,28,28] in [0,1]; "cycle" and "identity" are the two L1
        sums in [-1,1] units, before their weights."""
        _check_batch(x, "x", 2, " (channel 0: domain A digits, channel 1: domain B images; "
                     "see mp3d.data.digit_pairs.unpaired_batches)")  # fmt: skip
        if len(optimizers) != 2:
            raise ValueError(f"optimizers must be [the G's, the D's], got {len(optimizers)}")
        g_optimizer, d_optimizer = optimizers
        a, b = self.to_model_space(x[:, :1]), self.to_model_space(x[:, 1:])

        with _frozen(self.d_a, self.d_b):
            cycle, fake_b, fake_a = self._cycle(a, b)
            adversarial = lsgan_loss(self.d_b(fake_b), 1.0) + lsgan_loss(self.d_a(fake_a), 1.0)
            identity = torch.zeros((), device=x.device)
            if self.identity_weight > 0:
                identity = (self.g_ab(b) - b).abs().mean() + (self.g_ba(a) - a).abs().mean()
            g_loss = (
                adversarial
                + self.cycle_weight * cycle
                + self.cycle_weight * self.identity_weight * identity
            )
        g_params = [*self.g_ab.parameters(), *self.g_ba.parameters()]
        _step(g_loss, g_params, g_optimizer, grad_clip)

        shown_a = self.pool_a.query(fake_a, self.noise_generator)
        shown_b = self.pool_b.query(fake_b, self.noise_generator)
        real_a, real_b = self.d_a(a), self.d_b(b)
        d_loss_a = 0.5 * (lsgan_loss(real_a, 1.0) + lsgan_loss(self.d_a(shown_a), 0.0))
        d_loss_b = 0.5 * (lsgan_loss(real_b, 1.0) + lsgan_loss(self.d_b(shown_b), 0.0))
        d_params = [*self.d_a.parameters(), *self.d_b.parameters()]
        _step(d_loss_a + d_loss_b, d_params, d_optimizer, grad_clip)
        return {
            "loss": float(g_loss.detach()),
            "g_adv": float(adversarial.detach()),
            "cycle": float(cycle.detach()),
            "identity": float(identity.detach()),
            "d_loss": float((d_loss_a + d_loss_b).detach()),
            "d_real": float((real_a.detach().mean() + real_b.detach().mean()) / 2),
        }


# ----------------------------------------------------------------------------- evaluation


def _grey(images) -> torch.Tensor:
    """uint8 digits [N,28,28] -> float32 [N,1,28,28] in [0,1]."""
    import numpy as np

    pixels = torch.as_tensor(np.asarray(images))
    if pixels.dtype != torch.uint8 or tuple(pixels.shape[1:]) != DIGITS[1:]:
        raise ValueError(
            f"images must be uint8 digits [N, 28, 28], got {pixels.dtype} {list(pixels.shape)}"
        )
    return pixels.float().div(255).unsqueeze(1)


@torch.no_grad()
def _translate_all(model: TranslationModel, sources, name: str, batch_size: int):
    device = model._device()
    out = [model.translate(s.to(device), name).cpu() for s in sources.split(batch_size)]
    return torch.cat(out) if out else sources.clone()


def translation_scores(
    model: TranslationModel, data, classifier=None, batch_size: int = 250
) -> dict:
    """Scores of a translation model on the evaluation digits data.test_images (labels
    data.test_labels), see the module docstring: per direction (under "directions") l1,
    copy_l1, accuracy, source_accuracy and target_accuracy; the main direction's l1 and
    accuracy also at the top level. Without a digit classifier checkpoint the accuracies
    are None and "note" says how to make one (L1 needs none)."""
    from mp3d.generative.evaluation import classifier_accuracy, load_digit_classifier

    if not isinstance(model, TranslationModel):
        raise ValueError(f"model must be a TranslationModel, got {type(model).__name__}")
    check_int("batch_size", batch_size, 1)
    digits = _grey(data.test_images)
    labels = torch.as_tensor(data.test_labels, dtype=torch.int64)
    scores: dict = {"task": model.task, "images": len(digits)}
    if classifier is None:
        try:
            classifier = load_digit_classifier()
        except FileNotFoundError as error:
            scores["note"] = str(error)
    if classifier is not None:
        scores["classifier_accuracy"] = classifier.accuracy

    def accuracy(domain: str, images: torch.Tensor) -> float | None:
        if classifier is None:
            return None
        return classifier_accuracy(classifier, as_digits(domain, images), labels)

    was_training = model.training
    model.eval()
    try:
        per_direction = {}
        for direction in model.directions:
            sources = domain_images(direction.source, digits)
            targets = domain_images(direction.target, digits)
            outputs = _translate_all(model, sources, direction.name, batch_size)
            per_direction[direction.name] = {
                "l1": float((outputs - targets).abs().mean()),
                "copy_l1": float((sources - targets).abs().mean()),
                "accuracy": accuracy(direction.target, outputs),
                "source_accuracy": accuracy(direction.source, sources),
                "target_accuracy": accuracy(direction.target, targets),
            }
    finally:
        model.train(was_training)
    main = per_direction[model.directions[0].name]
    scores.update(
        direction=model.directions[0].name,
        l1=main["l1"],
        accuracy=main["accuracy"],
        directions=per_direction,
    )
    return scores


@torch.no_grad()
def translation_panels(
    model: TranslationModel, images, n: int = 16, seed: int = 0
) -> tuple[torch.Tensor, int]:
    """What a translation model's sample grid shows: for n digits drawn (by seed) from
    uint8 images [N,28,28], per direction the source, its translation and the known target
    side by side. Returns (panels [rows * columns,1,28,28] in [0,1] in row-major order, with
    white spacers between digits, columns); items per row ~ square grid overall."""
    check_int("n", n, 1, 1024)
    digits = _grey(images)
    if len(digits) == 0:
        raise ValueError("images must hold at least one digit to translate")
    pick = torch.randperm(len(digits), generator=torch.Generator().manual_seed(seed))
    digits = digits[pick[:n]]
    was_training = model.training
    model.eval()
    try:
        groups = []  # per digit: [3 * directions, 1, 28, 28]
        for_direction = []
        for direction in model.directions:
            sources = domain_images(direction.source, digits)
            outputs = _translate_all(model, sources, direction.name, 250)
            for_direction.append((sources, outputs, domain_images(direction.target, digits)))
        for i in range(len(digits)):
            groups.append(torch.stack([t[i] for triple in for_direction for t in triple]))
    finally:
        model.train(was_training)
    width = len(groups[0])
    per_row = max(1, math.ceil(math.sqrt(len(groups) / width)))
    spacer = torch.ones(1, *DIGITS)
    rows = []
    for start in range(0, len(groups), per_row):
        row = []
        for k, group in enumerate(groups[start : start + per_row]):
            row.extend([spacer] if k else [])
            row.append(group)
        panels = torch.cat(row)
        missing = per_row * (width + 1) - 1 - len(panels)
        rows.append(torch.cat([panels, spacer.expand(missing, *DIGITS)]))
    return torch.cat(rows), per_row * (width + 1) - 1


SPECS = [
    ModelSpec(
        "pix2pix",
        Pix2Pix,
        "grey",
        "pix2pix: U-Net generator, PatchGAN on (input, output) pairs, L1 + adversarial "
        "loss; --task edges (edge map -> digit) or half (top half -> digit)",
        {"task": "edges"},
        batch_size=32,
        lr=1e-3,
    ),
    ModelSpec(
        "cyclegan",
        CycleGAN,
        "grey",
        "CycleGAN: two U-Net generators, two PatchGANs, cycle and identity losses, on "
        "unpaired halves; --task thicken (digit <-> thick strokes) or invert",
        {"task": "thicken"},
        batch_size=16,
        lr=1e-3,
    ),
]
