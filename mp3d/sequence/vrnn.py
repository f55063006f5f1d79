"""The variational RNN (Chung et al. 2015) over characters: a VAE at every time step whose
prior and posterior are conditioned on the RNN's hidden state.

With h_{t-1} the state after x_<t, features phi_x(x_t) and phi_z(z_t):

    prior      p(z_t | h_{t-1})       = N(mu_p, diag sigma_p^2),  [mu_p, log sigma_p^2] = f(h_{t-1})
    posterior  q(z_t | x_t, h_{t-1})  = N(mu_q, diag sigma_q^2),  from [phi_x(x_t), h_{t-1}]
    decoder    p(x_t | z_t, h_{t-1})  = Categorical(softmax(g([phi_z(z_t), h_{t-1}])))
    recurrence h_t = GRU([phi_x(x_t), phi_z(z_t)], h_{t-1})

    ELBO = sum_t E_q[log p(x_t | z_t, h_{t-1})] - KL(q(z_t | x_t, h_{t-1}) || p(z_t | h_{t-1}))
         <= log p(x_1..T)

``loss`` is -ELBO per character (one reparameterised sample of each z_t), an upper bound on
the nats per character of the text; the two Gaussians' KL is taken in closed form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.sequence.language import CharModel, check_ids
from mp3d.training import check_int


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)) of diagonal Gaussians [...,Z] -> [...]."""
    return 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).square()) / logvar_p.exp() - 1.0
    ).sum(-1)


def _mlp(a: int, b: int, c: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))


class VRNN(CharModel):
    """Character VRNN: hidden state `hidden`, latent `latent` dims, features `features`."""

    recurrent = True

    def __init__(self, vocab_size: int, hidden: int = 256, latent: int = 32, features: int = 128):
        super().__init__(vocab_size)
        check_int("hidden", hidden, 1)
        check_int("latent", latent, 1)
        check_int("features", features, 1)
        self.hidden, self.latent = hidden, latent
        self.phi_x = nn.Sequential(
            nn.Embedding(vocab_size, features), nn.Linear(features, features), nn.ReLU()
        )
        self.phi_z = nn.Sequential(nn.Linear(latent, features), nn.ReLU())
        self.prior = _mlp(hidden, features, 2 * latent)
        self.encoder = _mlp(features + hidden, features, 2 * latent)
        self.decoder = _mlp(features + hidden, features, vocab_size)
        self.cell = nn.GRUCell(2 * features, hidden)

    def _gaussian(self, net: nn.Module, inputs: torch.Tensor):
        mu, logvar = net(inputs).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def _zeros(self, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(like.shape[0], self.hidden, dtype=torch.float32)

    def terms(self, y: torch.Tensor, h: torch.Tensor | None = None):
        """Per-step reconstruction -log p(y_t | z_t, h) and KL [B,T] (nats), and the final
        h [B,H], for the observed characters y [B,T] from state h (None: zeros)."""
        check_ids(y, self.vocab_size, "y")
        h = self._zeros(y) if h is None else h
        features = self.phi_x(y)  # [B,T,F]
        reconstructions, kls = [], []
        for t in range(y.shape[1]):
            mu_p, logvar_p = self._gaussian(self.prior, h)
            mu_q, logvar_q = self._gaussian(self.encoder, torch.cat([features[:, t], h], -1))
            z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()
            phi_z = self.phi_z(z)
            logits = self.decoder(torch.cat([phi_z, h], -1))
            reconstructions.append(F.cross_entropy(logits, y[:, t], reduction="none"))
            kls.append(gaussian_kl(mu_q, logvar_q, mu_p, logvar_p))
            h = self.cell(torch.cat([features[:, t], phi_z], -1), h)
        return torch.stack(reconstructions, 1), torch.stack(kls, 1), h

    def loss(self, x: torch.Tensor, y: torch.Tensor, state=None):
        """-ELBO per character of the characters y (x's successors) from state (None: zeros)."""
        check_ids(x, self.vocab_size)
        reconstruction, kl, h = self.terms(y, state)
        recon, kl = reconstruction.mean(), kl.mean()
        return recon + kl, h, {"recon": float(recon.detach()), "kl": float(kl.detach())}

    def _draw_prior(self, h: torch.Tensor, generator) -> torch.Tensor:
        mu, logvar = self._gaussian(self.prior, h)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device)
        return self.phi_z(mu + noise * (0.5 * logvar).exp())

    def start(self, prompt, generator=None):
        check_ids(prompt, self.vocab_size, "prompt")
        _, _, h = self.terms(prompt)  # the posterior's path through the prompt
        return h, self._draw_prior(h, generator)

    def next_logits(self, state):
        h, phi_z = state
        return self.decoder(torch.cat([phi_z, h], -1))

    def extend(self, state, ids, generator=None):
        h, phi_z = state
        h = self.cell(torch.cat([self.phi_x(ids), phi_z], -1), h)
        return h, self._draw_prior(h, generator)
