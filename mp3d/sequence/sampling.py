"""Generation from a character model (one-to-many): read a prompt, then draw one character
at a time from softmax(logits / temperature), optionally restricted to the top k."""

from __future__ import annotations

import torch

from mp3d.data.text import CharVocab
from mp3d.sequence.language import CharModel
from mp3d.training import check_float, check_int


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits [B,V] -> ids [B] drawn from softmax(logits / temperature) over the top_k most
    likely ids (all with None)."""
    check_float("temperature", temperature, 0.0, exclusive_minimum=True)
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B,V], got shape {tuple(logits.shape)}")
    logits = logits.float() / temperature
    if top_k is not None:
        check_int("top_k", top_k, 1)
        k = min(top_k, logits.shape[-1])
        kth = logits.topk(k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(
    model: CharModel,
    prompt: torch.Tensor,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """prompt ids [B,T>=1] -> [B,T+length]: the prompt followed by `length` drawn ids."""
    check_int("length", length, 0)
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be ids [B,T>=1], got shape {tuple(prompt.shape)}")
    was_training = model.training
    model.eval()
    state = model.start(prompt, generator)
    drawn = []
    for _ in range(length):
        ids = sample_next(model.next_logits(state), temperature, top_k, generator)
        drawn.append(ids)
        state = model.extend(state, ids, generator)
    model.train(was_training)
    return torch.cat([prompt, *(ids[:, None] for ids in drawn)], dim=1)


def default_prompt(vocab: CharVocab) -> str:
    """A newline if the vocabulary has one (text starts after a line break), else its first
    character."""
    return "\n" if "\n" in vocab.index else vocab.chars[0]


def sample_text(
    model: CharModel,
    vocab: CharVocab,
    prompt: str | None = None,
    length: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> str:
    """The prompt (None: default_prompt) and `length` characters drawn after it (prompt's
    characters must be in the vocabulary; ValueError naming the prompt otherwise)."""
    prompt = default_prompt(vocab) if prompt is None else prompt
    if not prompt:
        raise ValueError("prompt must hold at least one character, got ''")
    device = next(model.parameters()).device
    ids = vocab.encode(prompt, "prompt")[None].to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    return vocab.decode(generate(model, ids, length, temperature, top_k, generator)[0].cpu())
