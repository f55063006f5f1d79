"""The character models: each lowers its loss in a few steps with outputs of the right
shapes and ranges; the transformer's causal mask; the VRNN's ELBO (finite, a bound, falling);
generation with temperature and top-k."""

from __future__ import annotations

import pytest
import torch

from mp3d.sequence import MODEL_NAMES, VRNN, build_model, gaussian_kl, generate, sample_next
from mp3d.sequence.language import CharRNN
from mp3d.sequence.transformer import CharTransformer

pytestmark = pytest.mark.usefixtures("one_thread")

V = 7
TINY = {
    "lstm": {"hidden": 32, "layers": 1},
    "gru": {"hidden": 32, "layers": 1},
    "rnn": {"hidden": 32},
    "transformer": {"dim": 32, "layers": 2, "heads": 2, "block": 16},
    "vrnn": {"hidden": 32, "latent": 4, "features": 16},
}


def _batch(seed=0):
    """A learnable stream: a repeating pattern of period 5 with random phase per row."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.randint(0, 5, (8, 1), generator=g)
    ids = (torch.arange(17)[None] + phase) % 5
    return ids[:, :-1], ids[:, 1:]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_few_steps_lower_the_loss(name):
    torch.manual_seed(0)
    model = build_model(name, V, TINY[name])
    x, y = _batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss, state, scalars = model.loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] > 1.5  # about log(7) = 1.95 untrained
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    if name != "vrnn":
        logits, _ = model(x)
        assert logits.shape == (8, 16, V)
    assert (state is None) == (not model.recurrent)


def test_causal_mask_future_characters_do_not_change_earlier_logits():
    torch.manual_seed(1)
    model = CharTransformer(V, dim=32, layers=2, heads=4, block=12).eval()
    x = torch.randint(0, V, (3, 12))
    changed = x.clone()
    changed[:, 7] = (changed[:, 7] + 1) % V
    with torch.no_grad():
        a, b = model(x)[0], model(changed)[0]
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert (a[:, 7:] - b[:, 7:]).abs().amax() > 1e-4  # the change is seen from t = 7 on
    with pytest.raises(ValueError, match="more than block=12"):
        model(torch.zeros(1, 13, dtype=torch.int64))


def test_char_rnn_carried_state_equals_one_long_window():
    torch.manual_seed(2)
    model = CharRNN(V, "lstm", hidden=16, layers=2).eval()
    x = torch.randint(0, V, (2, 10))
    with torch.no_grad():
        whole, _ = model(x)
        first, state = model(x[:, :4])
        second, _ = model(x[:, 4:], state)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)


def test_vrnn_elbo_is_finite_a_bound_and_falls():
    torch.manual_seed(3)
    model = VRNN(V, hidden=32, latent=4, features=16)
    x, y = _batch(1)
    reconstruction, kl, h = model.terms(y)
    assert reconstruction.shape == kl.shape == (8, 16) and h.shape == (8, 32)
    assert torch.isfinite(reconstruction).all() and (kl >= -1e-6).all()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    bounds = []
    for _ in range(40):
        loss, _, scalars = model.loss(x, y)
        assert loss.item() == pytest.approx(scalars["recon"] + scalars["kl"], rel=1e-5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bounds.append(loss.item())
    assert bounds[-1] < 0.6 * bounds[0]


def test_gaussian_kl_closed_form():
    mu_q, lv_q = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    mu_p, lv_p = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.4]])
    q = torch.distributions.Normal(mu_q, (0.5 * lv_q).exp())
    p = torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(gaussian_kl(mu_q, lv_q, mu_p, lv_p), expected, atol=1e-6)
    assert gaussian_kl(mu_p, lv_p, mu_p, lv_p).abs().item() < 1e-7


def test_sample_next_honours_top_k_and_temperature():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    g = torch.Generator().manual_seed(0)
    top2 = sample_next(logits, 1.0, top_k=2, generator=g)
    assert set(top2.tolist()) == {0, 1}
    assert (top2 == 0).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.03)
    assert set(sample_next(logits, 1.0, top_k=1, generator=g).tolist()) == {0}
    cold = sample_next(logits, 0.05, generator=g)
    assert (cold == 0).float().mean() > 0.99
    hot = sample_next(logits, 100.0, generator=g)
    assert (hot == 3).float().mean().item() == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        sample_next(logits, 0.0)
    with pytest.raises(ValueError, match="top_k must be an int >= 1, got 0"):
        sample_next(logits, 1.0, top_k=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_generate_shapes_keep_the_prompt_and_are_reproducible(name):
    torch.manual_seed(4)
    model = build_model(name, V, TINY[name])
    prompt = torch.randint(0, V, (3, 5))
    out = generate(model, prompt, 20, 0.8, 3, torch.Generator().manual_seed(0))
    again = generate(model, prompt, 20, 0.8, 3, torch.Generator().manual_seed(0))
    assert out.shape == (3, 25) and out.dtype == torch.int64
    assert torch.equal(out[:, :5], prompt) and torch.equal(out, again)
    assert int(out.min()) >= 0 and int(out.max()) < V
    with pytest.raises(ValueError, match="prompt must be ids"):
        generate(model, torch.zeros(1, 0, dtype=torch.int64), 3)


def test_top_k_one_is_greedy_decoding():
    torch.manual_seed(5)
    model = CharRNN(V, "gru", hidden=16, layers=1).eval()
    prompt = torch.tensor([[1, 2]])
    out = generate(model, prompt, 6, 1.0, 1, torch.Generator().manual_seed(0))
    ids = prompt
    for _ in range(6):
        with torch.no_grad():
            logits, _ = model(ids)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, ids)


def test_bad_options_and_ids_are_named():
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("wavenet", V)
    with pytest.raises(ValueError, match="bad options"):
        build_model("lstm", V, {"heads": 2})
    with pytest.raises(ValueError, match="heads must divide dim"):
        CharTransformer(V, dim=30, heads=4)
    with pytest.raises(ValueError, match=r"x ids must be in 0..6, got 9"):
        CharRNN(V, hidden=8, layers=1)(torch.tensor([[9]]))
