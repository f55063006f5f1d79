"""Likelihood-based generative models of images, on the tensors, training layer and
command line of the rest of mp3d: baselines, autoregressive models, VAEs and VQ-VAE, and
normalizing flows; GANs, image-to-image translation (pix2pix, CycleGAN) and diffusion (see
mp3d.generative.registry for the names)."""

from mp3d.generative.base import GenerativeModel, ImageModel, ModelSpec
from mp3d.generative.registry import model_spec, models
from mp3d.generative.train import (
    GenerativeConfig,
    evaluate_model,
    evaluate_nll,
    load_generative,
    sample_grid,
    train_generative,
)

__all__ = [
    "GenerativeConfig",
    "GenerativeModel",
    "ImageModel",
    "ModelSpec",
    "evaluate_model",
    "evaluate_nll",
    "load_generative",
    "model_spec",
    "models",
    "sample_grid",
    "train_generative",
]
