"""Building blocks shared by the generative and sequence models, each one module with one job.

- ``MLP``; ``ResBlock2d``, ``SelfAttention2d``; ``UNet`` (optionally conditioned on an
  embedding) with ``SinusoidalEmbedding`` / ``TimestepEmbedding``;
- autoregressive masking: ``MaskedLinear`` with MADE's ``made_degrees`` / ``made_masks`` and
  ``MADENet`` (several masks, order- and connectivity-agnostic); ``MaskedConv2d`` of type A and
  B and the gated PixelCNN layer and stack without a blind spot; ``CausalConv1d`` and
  WaveNet's blocks; ``CausalSelfAttention`` and ``TransformerBlock`` with
  ``PositionalEmbedding`` (learned or sinusoidal).

Images are [B,C,H,W], sequences [B,C,T] for convolutions and [B,T,dim] for attention.
"""

from mp3d.nn.attention import CausalSelfAttention, TransformerBlock
from mp3d.nn.causal import CausalConv1d, WaveNetBlock, WaveNetStack
from mp3d.nn.conv import ResBlock2d, SelfAttention2d, group_norm
from mp3d.nn.embeddings import (
    PositionalEmbedding,
    SinusoidalEmbedding,
    TimestepEmbedding,
    sinusoidal_embedding,
)
from mp3d.nn.made import MADENet, MaskedLinear, made_degrees, made_masks
from mp3d.nn.mlp import MLP
from mp3d.nn.pixelcnn import GatedPixelCNNLayer, GatedPixelCNNStack, MaskedConv2d, raster_mask
from mp3d.nn.unet import UNet

__all__ = [
    "MLP",
    "CausalConv1d",
    "CausalSelfAttention",
    "GatedPixelCNNLayer",
    "GatedPixelCNNStack",
    "MADENet",
    "MaskedConv2d",
    "MaskedLinear",
    "PositionalEmbedding",
    "ResBlock2d",
    "SelfAttention2d",
    "SinusoidalEmbedding",
    "TimestepEmbedding",
    "TransformerBlock",
    "UNet",
    "WaveNetBlock",
    "WaveNetStack",
    "group_norm",
    "made_degrees",
    "made_masks",
    "raster_mask",
    "sinusoidal_embedding",
]
