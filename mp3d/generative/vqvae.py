"""VQ-VAE (van den Oord et al. 2017) with an autoregressive prior over its codes, on
binarised digits.

- Encoder: ConvEncoder, [B,1,28,28] -> z_e [B,D,7,7] (a 7x7 grid of D-dim vectors).
- Quantiser: each z_e vector becomes its nearest of K codebook entries (squared Euclidean
  distance), z_q = e_k. The codebook is learned by exponential moving averages (the paper's
  appendix; Sonnet's VectorQuantizerEMA), not by a codebook loss: per code, the EMA count
  N_k and the EMA sum m_k of the encoder outputs assigned to it, e_k = m_k / N_k with
  Laplace smoothing of the counts; so the codebook is a buffer that gets no gradient and
  moves only by that update (in training-mode calls of loss()). A code whose EMA count
  falls below ``dead_threshold`` (default 1: less than one assignment per batch on average)
  is restarted at a random encoder output of the batch, as Jukebox does against codebook
  collapse. The codebook starts at random encoder outputs of the first training batch.
- Straight-through estimator: the decoder gets z_e + sg(z_q - z_e), so the decoder's
  gradient with respect to z_q is passed to z_e unchanged.
- Decoder: ConvDecoder, z_q -> Bernoulli logits [B,1,28,28].
- Prior: a gated PixelCNN (mp3d.nn.GatedPixelCNNStack, no blind spot) over the 7x7 grid of
  K-way categorical codes in raster order; input the one-hot codes, output K logits per
  position, position i conditioned only on the codes before i.

Training is joint, one optimiser step per batch through the shared trainer:

    loss = -log p(x | z_q) + commitment * ||z_e - sg(z_q)||^2 - log p_prior(sg(codes)),

each summed per image (nats, except the commitment term, a squared distance summed over the
grid) and averaged over the batch; the prior learns from the current codes, which are
detached (its loss sends no gradient into the encoder).

NLL: -log p(x | z_q(x)) - log p_prior(z_q(x)) in nats per image. This is minus the ELBO
with q(z|x) the one-hot at the encoder's code (zero entropy), so it is an upper bound on
-log p(x) = -log sum_z p(x|z) p(z) for every x (deterministic, not only in expectation).

Samples: codes drawn ancestrally from the prior (its logits divided by the temperature),
decoded to Bernoulli means, then sampled, so values are in {0,1}.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mp3d.generative.base import (
    ImageModel,
    bernoulli_log_prob,
    bernoulli_sample,
    check_image_shape,
    check_images,
)
from mp3d.generative.latent import ConvDecoder, ConvEncoder
from mp3d.nn import GatedPixelCNNStack
from mp3d.training import check_float, check_int

__all__ = ["VQVAE", "CodePrior", "VectorQuantizer"]


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation of [B,D,H,W] vectors to a codebook [K,D] learned by EMA
    (module docstring): ``decay`` of the averages, ``epsilon`` of the Laplace smoothing."""

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        dead_threshold: float = 1.0,
    ) -> None:
        super().__init__()
        check_int("codebook_size", codebook_size, 2, 1 << 16)
        check_int("code_dim", code_dim, 1, 4096)
        check_float("decay", decay, 0.0, 1.0)
        if decay >= 1.0:
            raise ValueError(f"decay must be a float in [0, 1), got {decay!r}")
        check_float("epsilon", epsilon, 0.0, exclusive_minimum=True)
        check_float("dead_threshold", dead_threshold, 0.0)
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.decay, self.epsilon, self.dead_threshold = float(decay), float(epsilon), dead_threshold
        codebook = torch.randn(codebook_size, code_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # EMA counts N_k
        self.register_buffer("embed_sum", codebook.clone())  # EMA sums m_k (= e_k N_k)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index [N] of the codebook entry nearest to each row of flat [N,D]."""
        e = self.codebook
        distances = flat.square().sum(1, keepdim=True) - 2.0 * flat @ e.T + e.square().sum(1)
        return distances.argmin(1)

    def forward(self, z_e: torch.Tensor, update: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e [B,D,H,W] -> (z_q [B,D,H,W] the nearest entries, no gradient; codes [B,H,W]);
        with ``update``, then one EMA step of the codebook towards the assigned z_e."""
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise ValueError(f"z_e must be [B,{self.code_dim},H,W], got {list(z_e.shape)}")
        b, d, h, w = z_e.shape
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat)
        z_q = self.codebook[codes].view(b, h, w, d).permute(0, 3, 1, 2)
        if update:
            self.ema_update(flat, codes)
        return z_q, codes.view(b, h, w)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B,H,W] -> their entries [B,D,H,W]."""
        return self.codebook[codes].permute(0, 3, 1, 2)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step: N_k <- g N_k + (1-g) n_k, m_k <- g m_k + (1-g) sum of the vectors
        assigned to k, e_k = m_k / N~_k (N~ the Laplace-smoothed counts); then restarts
        codes with N_k < dead_threshold at random rows of flat [N,D]."""
        one_hot = F.one_hot(codes, self.codebook_size).to(flat.dtype)
        g = self.decay
        self.cluster_size.mul_(g).add_(one_hot.sum(0), alpha=1.0 - g)
        self.embed_sum.mul_(g).add_(one_hot.T @ flat, alpha=1.0 - g)
        total = self.cluster_size.sum()
        smoothed = (
            (self.cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        )
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if dead.any():
            self.restart(flat, dead)

    @torch.no_grad()
    def set_codes(self, entries: torch.Tensor, which: torch.Tensor | None = None) -> None:
        """Sets the codebook entries where ``which`` [K] is true (all by default) to entries
        [n,D], with EMA count 1 and sum the entry."""
        which = torch.ones_like(self.cluster_size, dtype=torch.bool) if which is None else which
        self.codebook[which] = entries
        self.embed_sum[which] = entries
        self.cluster_size[which] = 1.0

    @torch.no_grad()
    def restart(self, flat: torch.Tensor, which: torch.Tensor) -> None:
        """Sets the codes where ``which`` [K] is true to random rows of flat [N,D] (distinct
        rows while there are enough), count 1."""
        n = int(which.sum())
        if n <= len(flat):
            index = torch.randperm(len(flat), device=flat.device)[:n]
        else:
            index = torch.randint(len(flat), (n,), device=flat.device)
        self.set_codes(flat[index], which)


class CodePrior(nn.Module):
    """An autoregressive prior over a (H,W) grid of K-way codes: a 1x1 embedding of the
    one-hot codes, a GatedPixelCNNStack (type A first layer), and a two-layer 1x1 head to K
    logits per position; position (r, c) sees only the codes before it in raster order."""

    def __init__(
        self,
        codebook_size: int,
        grid: tuple[int, int] = (7, 7),
        channels: int = 64,
        n_layers: int = 6,
        kernel_size: int = 3,
        first_kernel_size: int = 5,
    ) -> None:
        super().__init__()
        check_int("codebook_size", codebook_size, 2, 1 << 16)
        check_int("channels", channels, 1, 4096)
        check_int("n_layers", n_layers, 1, 256)
        self.codebook_size, self.grid = codebook_size, tuple(grid)
        self.embed = nn.Conv2d(codebook_size, channels, 1, bias=False)
        self.stack = GatedPixelCNNStack(
            channels, channels, n_layers, kernel_size, first_kernel_size
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, codebook_size, 1),
        )

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:
        """one_hot [B,K,H,W] (any real values) -> logits [B,K,H,W] of each position's code."""
        return self.head(self.stack(self.embed(one_hot)))

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(codes) [B] in nats of codes [B,H,W] (long)."""
        one_hot = F.one_hot(codes, self.codebook_size).permute(0, 3, 1, 2).float()
        logits = self(one_hot)
        return -F.cross_entropy(logits, codes, reduction="none").sum((1, 2))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """n code grids [n,H,W], ancestrally in raster order from softmax(logits / T)."""
        h, w = self.grid
        device = device if device is not None else self.embed.weight.device
        codes = torch.zeros(n, h, w, dtype=torch.long, device=device)
        one_hot = torch.zeros(n, self.codebook_size, h, w, device=device)
        for r in range(h):
            for c in range(w):
                logits = self(one_hot)[:, :, r, c] / temperature
                probs = F.softmax(logits.double(), dim=1)
                if generator is not None:
                    probs = probs.to(generator.device)
                drawn = torch.multinomial(probs, 1, generator=generator)[:, 0]
                codes[:, r, c] = drawn.to(device)
                one_hot[:, :, r, c] = F.one_hot(codes[:, r, c], self.codebook_size).float()
        return codes


class VQVAE(ImageModel):
    """VQ-VAE with an EMA codebook and a jointly trained PixelCNN prior (module docstring).

    ``codebook_size`` K entries of ``code_dim`` D on an (H/4, W/4) grid; encoder and decoder
    of ``width`` with ``res_blocks`` residual blocks; ``commitment`` the beta of the
    commitment loss; ``decay`` of the codebook's EMA; the prior a gated PixelCNN of
    ``prior_channels`` and ``prior_layers``.
    """

    view = "binarised"
    nll_kind = "bound"

    def __init__(
        self,
        codebook_size: int = 32,
        code_dim: int = 16,
        width: int = 32,
        res_blocks: int = 1,
        commitment: float = 0.25,
        decay: float = 0.99,
        dead_threshold: float = 1.0,
        prior_channels: int = 32,
        prior_layers: int = 6,
        image_shape: Sequence[int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        check_int("width", width, 1, 4096)
        check_int("res_blocks", res_blocks, 0, 64)
        check_float("commitment", commitment, 0.0, 1e6)
        check_int("prior_channels", prior_channels, 1, 4096)
        check_int("prior_layers", prior_layers, 1, 256)
        self.image_shape = check_image_shape(image_shape, 4)
        channels, height, width_px = self.image_shape
        self.commitment = float(commitment)
        self.quantizer = VectorQuantizer(codebook_size, code_dim, decay, 1e-5, dead_threshold)
        self.encoder = ConvEncoder(channels, width, code_dim, res_blocks)
        self.decoder = ConvDecoder(code_dim, width, channels, res_blocks)
        self.prior = CodePrior(
            codebook_size, (height // 4, width_px // 4), prior_channels, prior_layers
        )

    @torch.no_grad()
    def on_train_start(self, batch: torch.Tensor) -> None:
        """Codebook at random encoder outputs of the first batch; decoder output bias at the
        logit of its mean pixel."""
        z_e = self.encode(batch)
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
        self.quantizer.restart(flat, torch.ones(self.quantizer.codebook_size, dtype=torch.bool))
        mean = batch.float().mean().clamp(1e-3, 1 - 1e-3)
        self.decoder.output_bias.fill_(float(torch.logit(mean)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W] -> z_e [B,D,H/4,W/4]."""
        check_images(x, self.image_shape)
        return self.encoder(x)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W] -> its codes [B,H/4,W/4] (no codebook update)."""
        return self.quantizer(self.encode(x))[1]

    def terms(self, x: torch.Tensor, update: bool = False) -> dict[str, torch.Tensor]:
        """Per image [B]: "reconstruction" -log p(x|z_q) and "prior" -log p_prior(codes) in
        nats, "commitment" ||z_e - sg(z_q)||^2; "codes" [B,h,w]. ``update``: one EMA step."""
        z_e = self.encode(x)
        z_q, codes = self.quantizer(z_e, update=update)
        z_st = z_e + (z_q - z_e).detach()  # straight-through: forward z_q, backward to z_e
        logits = self.decoder(z_st)
        return {
            "reconstruction": -bernoulli_log_prob(logits, x),
            "commitment": (z_e - z_q).square().sum((1, 2, 3)),
            "prior": -self.prior.log_prob(codes),
            "codes": codes,
        }

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean of reconstruction + commitment * commitment term + prior NLL of the detached
        codes; an EMA step of the codebook in training mode. Logs the parts, the bound
        (reconstruction + prior) and the perplexity of the batch's code usage."""
        t = self.terms(x, update=self.training)
        reconstruction, commitment = t["reconstruction"].mean(), t["commitment"].mean()
        prior = t["prior"].mean()
        loss = reconstruction + self.commitment * commitment + prior
        usage = torch.bincount(t["codes"].flatten(), minlength=self.quantizer.codebook_size)
        p = usage.float() / usage.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        logged = {
            "reconstruction": float(reconstruction.detach()),
            "commitment": float(commitment.detach()),
            "prior": float(prior.detach()),
            "perplexity": float(perplexity),
        }
        logged["bound"] = logged["reconstruction"] + logged["prior"]
        return loss, logged

    @torch.no_grad()
    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z_q(x)) - log p_prior(z_q(x)) [B] in nats: an upper bound on -log p(x)."""
        t = self.terms(x)
        return t["reconstruction"] + t["prior"]

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images [n,C,H,W] in {0,1}: prior codes (logits / temperature), decoded to
        Bernoulli means, then sampled."""
        check_int("n", n, 0)
        check_float("temperature", temperature, 0.0, exclusive_minimum=True)
        codes = self.prior.sample(n, temperature, generator, self.quantizer.codebook.device)
        probs = torch.sigmoid(self.decoder(self.quantizer.lookup(codes)))
        return bernoulli_sample(probs, generator)
