"""Normalizing flows on dequantised digits: NICE, RealNVP and Glow (exact likelihoods in
bits/dim, sampling at a temperature), built from the invertible layers of
mp3d.generative.flows.layers; see mp3d.generative.flows.models for the density they give.

The registered defaults (SPECS) were sized from training curves on the shared 8,000 digits
measured on a 2-core CPU shared with other jobs (one thread; test bits/dim of the 1,000
evaluation digits):

    realnvp (batch norm on)      300 steps of 64:  1.90 (the same flow without it: 2.8)
    realnvp, train_generative for 5 minutes (521 steps): 1.83
    glow (2 levels x 8 x 64)     800 steps of 64:  2.06
    glow (2 levels x 4 x 32)    1500 steps of 32:  2.12
    nice (4 couplings, 1000x3)  1000 steps of 64:  4.78 (NICE's published MNIST figure
                                                    corresponds to about 4.4)

On that machine a step of the default RealNVP or Glow took about 0.6-1.5 s, so 5 minutes
were a few hundred steps. Later 5-minute runs of train_generative on 1 thread, two side by
side on an otherwise quiet machine, chose the batch and lr: smaller batches (more steps)
and a higher lr win in this budget:

    realnvp  batch 64, lr 2e-3: 1.727 (890 steps); hidden 32: 1.762 (440)
             batch 32, lr 2e-3: 1.661 (1,687); lr 3e-3: 1.626 (1,771); lr 5e-3: 1.631
             batch 16, lr 2e-3: 1.635 (2,782)
    glow     batch 64, lr 2e-3: 1.970 (1,018); batch 32, lr 3e-3: 1.733 (2,228)

A MixtureLogisticCDF on the pixels before the flow (``elementwise=K`` components, after
Flow++; the specs take K = 16) lets each pixel's quantisation bin map to a logistic where
the couplings left it uniform, which a Gaussian latent fits at a cost of 0.18 nats per
pixel; most of the digits' pixels are background. 5-minute runs as above, two side by
side on 1 thread, on a slower machine (AVX2 only: RealNVP took 1,140 steps where the rows
above had 1,771):

    realnvp  batch 32, lr 3e-3: 1.674 (1,140 steps); K = 8: 1.352 (1,083); 16: 1.313 (912)
    glow     batch 32, lr 3e-3, K = 8: 1.371 (1,091)
    nice     batch 64, lr 2e-3, K = 8: 1.571 (1,555); 16: 1.510 (1,366); 32: 1.510 (994);
             batch 32, lr 3e-3, K = 8: 1.598 (1,896); plain NICE was at 4.36;
             hidden 500 (was 1000), K = 16: 1.485 (2,908), the spec
"""

from mp3d.generative.base import ModelSpec
from mp3d.generative.flows.layers import (
    ActNorm,
    BatchNormFlow,
    Coupling,
    Flatten,
    Flow,
    FlowSequence,
    InvConv1x1,
    MixtureLogisticCDF,
    Scaling,
    Split,
    Squeeze,
    Unsqueeze,
    alternating_mask,
    checkerboard_mask,
    data_dependent_init,
    half_mask,
)
from mp3d.generative.flows.models import NICE, Glow, ImageFlow, RealNVP

__all__ = [
    "NICE",
    "SPECS",
    "ActNorm",
    "BatchNormFlow",
    "Coupling",
    "Flatten",
    "Flow",
    "FlowSequence",
    "Glow",
    "ImageFlow",
    "InvConv1x1",
    "MixtureLogisticCDF",
    "RealNVP",
    "Scaling",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "alternating_mask",
    "checkerboard_mask",
    "data_dependent_init",
    "half_mask",
]

# Defaults sized for about 5 minutes of training on a 2-core CPU (see the module docstring).
SPECS = [
    ModelSpec(
        "nice",
        NICE,
        "dequantised",
        "NICE: additive couplings of MLPs on the pixels and a diagonal scaling",
        {"couplings": 4, "hidden": 500, "depth": 3, "shift": True, "elementwise": 16},
        batch_size=64,
        lr=2e-3,
    ),
    ModelSpec(
        "realnvp",
        RealNVP,
        "dequantised",
        "RealNVP: affine checkerboard/channel couplings of ResNets, batch norm, multi-scale",
        {
            "scales": 3,
            "couplings": 3,
            "hidden": 16,
            "blocks": 1,
            "batch_norm": True,
            "elementwise": 16,
        },
        batch_size=32,
        lr=3e-3,
    ),
    ModelSpec(
        "glow",
        Glow,
        "dequantised",
        "Glow: actnorm, invertible 1x1 convolutions and affine couplings, multi-scale",
        {
            "levels": 2,
            "steps": 8,
            "hidden": 64,
            "coupling": "affine",
            "learned_prior": True,
            "elementwise": 16,
        },
        batch_size=32,
        lr=3e-3,
    ),
]
