"""Gaussian diffusion in discrete time: noise schedules, the forward process q, its
posterior, and the DDPM and DDIM samplers over any epsilon-predictor.

Indexing: t = 0..T-1 here is DDPM's t = 1..T (Ho et al. 2020). With alpha_t = 1 - beta_t
and alpha_bar_t = prod_{s<=t} alpha_s (alpha_bar_{-1} = 1, "x_{-1}" being the data x_0):

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)
    q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, beta_tilde_t I), with
        c0_t = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t),
        ct_t = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t),
        beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t).

Samplers take ``eps_fn(x_t, t) -> eps`` (t int64 [B] in 0..T-1) and predict
x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), optionally clipped to a range
(then eps is re-derived from the clipped x_0, as denoising-diffusion-pytorch does).

- DDPM ancestral sampling (``ddpm_sample``): x_{t-1} = posterior mean at the predicted x_0
  plus sigma_t z for t > 0, sigma_t^2 = beta_tilde_t ("posterior", the default) or beta_t
  ("beta"; DDPM's two choices); no noise at the last step.
- DDIM (``ddim_sample``, Song et al. 2021) on a sub-sequence tau of the timesteps,
  x_{t'} = sqrt(alpha_bar_t') x0 + sqrt(1 - alpha_bar_t' - sigma^2) eps + sigma z, with
  sigma = eta sqrt((1 - alpha_bar_t') / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_t').
  eta = 0 is deterministic given x_T; eta = 1 on every timestep is DDPM with the posterior
  variance (the same update, noise drawn in the same order).

``temperature`` scales x_T and every step's fresh noise z.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from mp3d.training import check_choice, check_float, check_int

__all__ = [
    "PREDICTIONS",
    "SCHEDULES",
    "VARIANCES",
    "NoiseSchedule",
    "cosine_betas",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "linear_betas",
]

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v")  # what a diffusion network predicts (mp3d.generative.diffusion.models)
VARIANCES = ("posterior", "beta")
MAX_BETA = 0.999

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear schedule, float64 [T]: beta_start..beta_end at T = 1000; other T scale
    both ends by 1000 / T (Improved DDPM's rule, so alpha_bar_T stays near 4e-5), capped
    at 0.999."""
    timesteps = check_int("timesteps", timesteps, 1)
    scale = 1000.0 / timesteps
    betas = torch.linspace(scale * beta_start, scale * beta_end, timesteps, dtype=torch.float64)
    return betas.clamp(max=MAX_BETA)


def cosine_betas(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, float64 [T]: alpha_bar(u) = f(u) / f(0),
    f(u) = cos^2((u / T + s) / (1 + s) pi / 2), beta_t = 1 - alpha_bar(t+1) / alpha_bar(t),
    capped at 0.999 (their cap: the last beta would be 1)."""
    timesteps = check_int("timesteps", timesteps, 1)
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(0.0, MAX_BETA)


class NoiseSchedule:
    """The forward process of a beta schedule (see the module docstring for the maths and the
    indexing); every table is float64 [T] on the CPU, gathered per batch onto x's device and
    dtype by the methods, which take t int64 [B] in 0..T-1 and x [B,...]."""

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64).cpu()
        if betas.dim() != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {list(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must all lie in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        one_minus = 1.0 - self.alpha_bar
        self.posterior_variance = betas * (1.0 - self.alpha_bar_prev) / one_minus
        self.posterior_coef_x0 = betas * self.alpha_bar_prev.sqrt() / one_minus
        self.posterior_coef_xt = (1.0 - self.alpha_bar_prev) * self.alphas.sqrt() / one_minus

    @classmethod
    def make(cls, kind: str, timesteps: int) -> NoiseSchedule:
        """The "linear" or "cosine" schedule with T = timesteps."""
        check_choice("schedule", kind, SCHEDULES)
        check_int("timesteps", timesteps, 1)
        return cls(linear_betas(timesteps) if kind == "linear" else cosine_betas(timesteps))

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    def _check_t(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.dtype not in (torch.int32, torch.int64) or t.shape != (x.shape[0],):
            raise ValueError(f"t must be int64 [B={x.shape[0]}], got {t.dtype} {list(t.shape)}")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= self.timesteps):
            raise ValueError(f"t must lie in 0..{self.timesteps - 1}")
        return t

    def at(self, table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """table[t] as [B,1,...,1] on x's device and dtype (broadcasts against x)."""
        t = self._check_t(t, x)
        values = table[t.cpu().long()].to(device=x.device, dtype=x.dtype)
        return values.reshape(-1, *([1] * (x.dim() - 1)))

    def q_mean_variance(
        self, x0: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [B,...] and variance [B,1,..] of q(x_t | x_0)."""
        return self.at(self.alpha_bar, t, x0).sqrt() * x0, 1.0 - self.at(self.alpha_bar, t, x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise."""
        mean, variance = self.q_mean_variance(x0, t)
        return mean + variance.sqrt() * noise

    def q_step_mean_variance(
        self, x_prev: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of one forward step q(x_t | x_{t-1})."""
        return self.at(self.alphas, t, x_prev).sqrt() * x_prev, self.at(self.betas, t, x_prev)

    def posterior_mean_variance(
        self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [B,...] and variance [B,1,..] of q(x_{t-1} | x_t, x_0)."""
        mean = (
            self.at(self.posterior_coef_x0, t, xt) * x0
            + self.at(self.posterior_coef_xt, t, xt) * xt
        )
        return mean, self.at(self.posterior_variance, t, xt)

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 implied by x_t and its noise: (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        alpha_bar = self.at(self.alpha_bar, t, xt)
        return (xt - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()

    def eps_from_x0(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise implied by x_t and x_0 (predict_x0's inverse in eps)."""
        alpha_bar = self.at(self.alpha_bar, t, xt)
        return (xt - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Salimans & Ho's velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0."""
        alpha_bar = self.at(self.alpha_bar, t, x0)
        return alpha_bar.sqrt() * eps - (1.0 - alpha_bar).sqrt() * x0

    def eps_from_v(self, xt: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The noise implied by x_t and a predicted velocity: sqrt(1 - abar_t) x_t +
        sqrt(abar_t) v (then x_0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v stays bounded where
        abar_t -> 0, unlike x_0 from a predicted eps, which divides by sqrt(abar_t))."""
        alpha_bar = self.at(self.alpha_bar, t, xt)
        return (1.0 - alpha_bar).sqrt() * xt + alpha_bar.sqrt() * v


# ----------------------------------------------------------------------------- samplers


def _randn(
    shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor
) -> torch.Tensor:
    """Standard normal draws on the generator's device, moved to like's device and dtype
    (a CPU generator samples a CUDA model, and gives the same numbers on every device)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=like.dtype).to(
        like.device
    )


def _start(
    shape: Sequence[int],
    noise: torch.Tensor | None,
    generator: torch.Generator | None,
    temperature: float,
    device: torch.device | str | None,
) -> torch.Tensor:
    check_float("temperature", temperature, 0.0)
    if noise is not None:
        if tuple(noise.shape) != tuple(shape):
            raise ValueError(f"noise must have shape {list(shape)}, got {list(noise.shape)}")
        if not noise.is_floating_point():
            raise ValueError(f"noise must be a float tensor, got {noise.dtype}")
        return noise.to(device=device or noise.device) * temperature
    like = torch.zeros((), device=device)
    return _randn(shape, generator, like) * temperature


def _x0_and_eps(
    schedule: NoiseSchedule,
    eps_fn: EpsFn,
    x: torch.Tensor,
    t: torch.Tensor,
    clip: tuple[float, float] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    eps = eps_fn(x, t)
    x0 = schedule.predict_x0(x, t, eps)
    if clip is not None:
        x0 = x0.clamp(*clip)
        eps = schedule.eps_from_x0(x, t, x0)
    return x0, eps


def ddpm_sample(
    schedule: NoiseSchedule,
    eps_fn: EpsFn,
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    clip: tuple[float, float] | None = None,
    variance: str = "posterior",
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Ancestral sampling over all T steps: x_T ~ N(0, temperature^2 I) (or ``noise`` times
    temperature) -> x_0 of ``shape``; see the module docstring."""
    check_choice("variance", variance, VARIANCES)
    x = _start(shape, noise, generator, temperature, device)
    for step in reversed(range(schedule.timesteps)):
        t = torch.full((x.shape[0],), step, dtype=torch.int64, device=x.device)
        x0, _ = _x0_and_eps(schedule, eps_fn, x, t, clip)
        mean, var = schedule.posterior_mean_variance(x0, x, t)
        if step == 0:
            x = mean
            break
        if variance == "beta":
            var = schedule.at(schedule.betas, t, x)
        x = mean + var.sqrt() * temperature * _randn(x.shape, generator, x)
    return x


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """The DDIM sub-sequence: steps + 1 increasing times -1 = t_0 < ... < t_steps = T - 1,
    t_i = floor(i T / steps) - 1 (-1 stands for the data); steps = T gives every timestep."""
    timesteps = check_int("timesteps", timesteps, 1)
    steps = check_int("steps", steps, 1, timesteps)
    return [i * timesteps // steps - 1 for i in range(steps + 1)]


def ddim_sample(
    schedule: NoiseSchedule,
    eps_fn: EpsFn,
    shape: Sequence[int],
    steps: int,
    eta: float = 0.0,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    clip: tuple[float, float] | None = None,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """DDIM over ``steps`` timesteps (ddim_timesteps) with stochasticity eta in [0, 1]:
    x_T (as ddpm_sample's) -> x_0 of ``shape``; see the module docstring."""
    times = ddim_timesteps(schedule.timesteps, steps)
    eta = check_float("eta", eta, 0.0, 1.0)
    x = _start(shape, noise, generator, temperature, device)
    alpha_bar = schedule.alpha_bar
    for t_now, t_next in zip(reversed(times[1:]), reversed(times[:-1])):
        t = torch.full((x.shape[0],), t_now, dtype=torch.int64, device=x.device)
        x0, eps = _x0_and_eps(schedule, eps_fn, x, t, clip)
        a_now = float(alpha_bar[t_now])
        a_next = float(alpha_bar[t_next]) if t_next >= 0 else 1.0
        sigma = eta * math.sqrt((1 - a_next) / (1 - a_now) * (1 - a_now / a_next))
        x = math.sqrt(a_next) * x0 + math.sqrt(max(1 - a_next - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * temperature * _randn(x.shape, generator, x)
    return x
