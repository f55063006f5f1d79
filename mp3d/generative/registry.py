"""The registered image models, by name: each model family's module lists its ModelSpecs
in SPECS, and MODELS gathers them (importing the families on first use)."""

from __future__ import annotations

import importlib
from functools import cache

from mp3d.generative.base import ModelSpec

__all__ = ["model_spec", "models"]

FAMILIES = (
    "baselines",
    "autoregressive",
    "latent",
    "flows",
    "adversarial",
    "translation",
    "diffusion",
)


@cache
def models() -> dict[str, ModelSpec]:
    """Every registered model, by name, in the families' order."""
    specs: dict[str, ModelSpec] = {}
    for family in FAMILIES:
        module_name = f"mp3d.generative.{family}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # a family not in this build
                continue
            raise
        for spec in module.SPECS:
            if spec.name in specs:
                raise RuntimeError(f"two models are called {spec.name!r}")
            specs[spec.name] = spec
    return specs


def model_spec(name: str) -> ModelSpec:
    """The ModelSpec called `name`; ValueError listing the names otherwise."""
    specs = models()
    if name not in specs:
        raise ValueError(f"model must be one of {', '.join(specs)}, got {name!r}")
    return specs[name]
