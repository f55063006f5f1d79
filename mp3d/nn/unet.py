"""A U-Net for image-to-image maps, optionally conditioned on an embedding (diffusion's t).

Usage for a diffusion model's noise predictor::

    embed = TimestepEmbedding(128)                # t [B] -> [B,128]
    unet = UNet(1, 1, base_channels=32, emb_dim=128)
    eps = unet(x_t, embed(t))                     # [B,1,28,28] -> [B,1,28,28]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.nn.conv import ResBlock2d, SelfAttention2d, group_norm


class UNet(nn.Module):
    """[B,in,H,W] (+ emb [B,emb_dim]) -> [B,out,H,W], any H and W.

    DDPM's layout: a 3x3 input conv; per level ``n_res_blocks`` ResBlock2d of
    base_channels * channel_mults[level] channels, then a stride-2 conv (all but the last
    level); a middle of two blocks; the mirror image going up, each block fed the matching
    skip, with nearest upsampling to the skip's exact size (so 28 -> 14 -> 7 -> 4 and back);
    GroupNorm-SiLU-3x3 conv out. Levels listed in ``attention_levels`` (and the middle, if
    ``mid_attention``) add SelfAttention2d after each block.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        emb_dim: int | None = None,
        attention_levels: Sequence[int] = (),
        mid_attention: bool = False,
        n_heads: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("base_channels", base_channels),
            ("n_res_blocks", n_res_blocks),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not channel_mults or any(m < 1 for m in channel_mults):
            raise ValueError(
                f"channel_mults must be a non-empty list of ints >= 1, got {channel_mults}"
            )
        n_levels = len(channel_mults)
        if any(not 0 <= level < n_levels for level in attention_levels):
            raise ValueError(
                f"attention_levels must be in 0..{n_levels - 1}, got {attention_levels}"
            )
        self.emb_dim = emb_dim

        def block(c_in: int, c_out: int, level: int | None) -> nn.ModuleList:
            layers = [ResBlock2d(c_in, c_out, emb_dim, dropout)]
            if (level is None and mid_attention) or level in attention_levels:
                layers.append(SelfAttention2d(c_out, n_heads))
            return nn.ModuleList(layers)

        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        skips, ch = [base_channels], base_channels
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mults):
            blocks = nn.ModuleList()
            for _ in range(n_res_blocks):
                blocks.append(block(ch, base_channels * mult, level))
                ch = base_channels * mult
                skips.append(ch)
            downsample = None
            if level < n_levels - 1:
                downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
                skips.append(ch)
            self.down.append(nn.ModuleDict({"blocks": blocks, "downsample": downsample}))
        self.mid = nn.ModuleList([block(ch, ch, None), block(ch, ch, None)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            blocks = nn.ModuleList()
            for _ in range(n_res_blocks + 1):
                blocks.append(block(ch + skips.pop(), base_channels * mult, level))
                ch = base_channels * mult
            upsample = nn.Conv2d(ch, ch, 3, padding=1) if level > 0 else None
            self.up.append(nn.ModuleDict({"blocks": blocks, "upsample": upsample}))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    @staticmethod
    def _run(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = layers[0](h, emb)
        for layer in layers[1:]:
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be [B,C,H,W], got shape {tuple(x.shape)}")
        if self.emb_dim is not None and (emb is None or emb.shape != (x.shape[0], self.emb_dim)):
            got = None if emb is None else tuple(emb.shape)
            raise ValueError(f"emb must be [B={x.shape[0]}, emb_dim={self.emb_dim}], got {got}")
        if self.emb_dim is None and emb is not None:
            raise ValueError("emb given to a UNet built without emb_dim")
        h = self.conv_in(x)
        hs = [h]
        for level in self.down:
            for layers in level["blocks"]:
                h = self._run(layers, h, emb)
                hs.append(h)
            if level["downsample"] is not None:
                h = level["downsample"](h)
                hs.append(h)
        for layers in self.mid:
            h = self._run(layers, h, emb)
        for level in self.up:
            for layers in level["blocks"]:
                h = self._run(layers, torch.cat([h, hs.pop()], dim=1), emb)
            if level["upsample"] is not None:
                h = level["upsample"](F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))
