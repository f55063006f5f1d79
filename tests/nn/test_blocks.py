"""mp3d.nn: each block's masking property measured with autograd on random inputs (exactly the
allowed dependencies, none of the forbidden ones), shapes and dtypes, and refused arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mp3d.nn import (
    MLP,
    CausalConv1d,
    CausalSelfAttention,
    GatedPixelCNNLayer,
    GatedPixelCNNStack,
    MADENet,
    MaskedConv2d,
    MaskedLinear,
    PositionalEmbedding,
    ResBlock2d,
    SelfAttention2d,
    SinusoidalEmbedding,
    TimestepEmbedding,
    TransformerBlock,
    UNet,
    WaveNetBlock,
    WaveNetStack,
    made_degrees,
    made_masks,
    raster_mask,
    sinusoidal_embedding,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dependencies(f, x: torch.Tensor, n_positions: int, select) -> torch.Tensor:
    """bool [n_positions, *x.shape[2:]]: which input positions output position i depends on.

    ``select(out, i)`` picks output position i ([B, C_out]) as a view; a random mix of its
    channels is back-propagated (all positions at once, as a batch of vector-Jacobian
    products), and any non-zero gradient in any batch item or channel counts.
    """
    x = x.detach().clone().requires_grad_(True)
    out = f(x)
    cotangents = torch.zeros(n_positions, *out.shape, dtype=out.dtype)
    for i in range(n_positions):
        picked = select(cotangents[i], i)
        picked.copy_(torch.randn(picked.shape, generator=generator(i), dtype=out.dtype))
    (grads,) = torch.autograd.grad(out, x, cotangents, is_grads_batched=True)
    return (grads != 0).any(1).any(1)


def image_dependencies(f, x: torch.Tensor) -> torch.Tensor:
    """bool [H, W, H, W]: output pixel (r, c) depends on input pixel (r', c')."""
    h, w = x.shape[-2:]
    deps = dependencies(f, x, h * w, lambda out, i: out[:, :, i // w, i % w])
    return deps.reshape(h, w, h, w)


def sequence_dependencies(f, x: torch.Tensor) -> torch.Tensor:
    """bool [T, T]: output t depends on input s; f maps [B,C,T] -> [B,C',T]."""
    return dependencies(f, x, x.shape[-1], lambda out, i: out[..., i])


def raster_before(h: int, w: int, radius: int | None = None, inclusive: bool = False):
    """bool [H,W,H,W]: (r',c') strictly before (r,c) in raster order (or equal, if inclusive),
    within a (2 radius + 1)-wide window (any distance if radius is None)."""
    r = torch.arange(h)[:, None, None, None]
    c = torch.arange(w)[None, :, None, None]
    rr = torch.arange(h)[None, None, :, None]
    cc = torch.arange(w)[None, None, None, :]
    before = (rr < r) | ((rr == r) & (cc < c))
    if inclusive:
        before |= (rr == r) & (cc == c)
    if radius is not None:
        before &= ((rr - r).abs() <= radius) & ((cc - c).abs() <= radius)
    return before


def gated_field(h: int, w: int, radius: int) -> torch.Tensor:
    """The exact field of a gated stack of receptive radius P: rows r-1-P .. r-1 at columns
    c-P .. c+P, and row r at columns c-P .. c-1."""
    r = torch.arange(h)[:, None, None, None]
    c = torch.arange(w)[None, :, None, None]
    rr = torch.arange(h)[None, None, :, None]
    cc = torch.arange(w)[None, None, None, :]
    above = (rr < r) & (rr >= r - 1 - radius) & ((cc - c).abs() <= radius)
    left = (rr == r) & (cc < c) & (cc >= c - radius)
    return above | left


# --- MADE ---------------------------------------------------------------------------------------


def made_jacobian_pattern(net: MADENet, d: int) -> torch.Tensor:
    """bool [K, D, D]: output (k, i) depends on input j, over a batch of random inputs."""
    x = torch.randn(3, d, generator=generator(1), dtype=torch.float64, requires_grad=True)
    out = net(x)  # [3, K, D]
    rows = []
    for unit in out.flatten(1).unbind(1):  # one backward per output unit
        (grad,) = torch.autograd.grad(unit.sum(), x, retain_graph=True)
        rows.append((grad != 0).any(0))
    return torch.stack(rows).reshape(out.shape[1], d, d)


def mask_path_pattern(net: MADENet) -> torch.Tensor:
    """bool [K*D, D]: input j reaches output unit i through the masks (a path exists)."""
    reach = net.layers[0].mask.bool()
    for layer in net.layers[1:]:
        reach = (layer.mask.double() @ reach.double()) > 0
    return reach


@pytest.mark.parametrize("connectivity", ["random", "sequential"])
def test_made_outputs_depend_only_on_earlier_inputs_for_every_mask(connectivity):
    d, k = 7, 2
    net = MADENet(
        d,
        [32, 32],
        n_outputs_per_input=k,
        n_masks=4,
        order_agnostic=True,
        connectivity=connectivity,
        activation=nn.Tanh,
    ).double()
    orderings = set()
    for index in range(net.n_masks):
        net.set_mask(index)
        position = torch.empty(d, dtype=torch.long)
        position[net.ordering] = torch.arange(d)
        allowed = position[None, :] < position[:, None]  # [i, j]: j strictly before i
        pattern = made_jacobian_pattern(net, d)
        assert not (pattern & ~allowed).any(), f"mask {index} leaks a later input"
        # the measured dependencies are exactly the paths through the masks, and not trivial
        assert torch.equal(pattern.reshape(k * d, d), mask_path_pattern(net))
        assert pattern.sum() >= 0.9 * k * allowed.sum()
        if connectivity == "sequential":
            assert torch.equal(pattern, allowed.expand(k, d, d))
        first = int(net.ordering[0])
        assert not pattern[:, first].any()  # the first variable sees only biases
        orderings.add(tuple(net.ordering.tolist()))
    assert len(orderings) == net.n_masks  # order-agnostic: a different ordering per mask


def test_made_masks_are_fixed_by_the_seed_and_restored_from_a_checkpoint():
    def make(seed):
        return MADENet(5, [16], n_masks=3, order_agnostic=True, seed=seed)

    a, b = make(0), make(0)
    assert b.next_mask() == 1 and b.next_mask() == 2 and b.next_mask() == 0
    for index in range(3):
        a.set_mask(index)
        b.set_mask(index)
        assert torch.equal(a.ordering, b.ordering)
        assert all(torch.equal(p.mask, q.mask) for p, q in zip(a.layers, b.layers))
    a.set_mask(2)
    restored = make(0)
    restored.load_state_dict(a.state_dict())
    assert int(restored.mask_index) == 2 and torch.equal(restored.ordering, a.ordering)
    x = torch.randn(4, 5)
    torch.testing.assert_close(restored(x), a(x))
    other = make(1)  # another seed, other orderings
    assert any(not torch.equal(other.mask_set(i)[0], a.mask_set(i)[0]) for i in range(3))


def test_connectivity_agnostic_masks_differ_in_hidden_degrees_only():
    net = MADENet(6, [24], n_masks=3, connectivity="random")
    orderings = [net.mask_set(i)[0] for i in range(3)]
    assert all(torch.equal(o, torch.arange(6)) for o in orderings)
    hidden = [net.mask_set(i)[1][0] for i in range(3)]
    assert not torch.equal(hidden[0], hidden[1]) and not torch.equal(hidden[1], hidden[2])


def test_made_without_hidden_layers_is_strictly_lower_triangular_in_the_ordering():
    ordering = torch.tensor([2, 0, 3, 1])
    (mask,) = made_masks(made_degrees(4, [], ordering))
    position = torch.empty(4, dtype=torch.long)
    position[ordering] = torch.arange(4)
    assert torch.equal(mask.bool(), position[None, :] < position[:, None])


def test_made_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="connectivity"):
        made_degrees(4, [8], connectivity="dense")
    with pytest.raises(ValueError, match="ordering"):
        made_degrees(4, [8], ordering=torch.tensor([0, 1, 1, 2]))
    with pytest.raises(ValueError, match="n_masks"):
        MADENet(4, [8], n_masks=0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        MADENet(4, [])
    with pytest.raises(ValueError, match="mask must be"):
        MaskedLinear(3, 2).set_mask(torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"x must be \[B, 4\]"):
        MADENet(4, [8])(torch.zeros(2, 5))


# --- PixelCNN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_masked_conv_sees_exactly_the_earlier_pixels_of_its_window(mask_type, kernel_size):
    conv = MaskedConv2d(2, 3, kernel_size, mask_type).double()
    x = torch.randn(2, 2, 7, 7, generator=generator(), dtype=torch.float64)
    deps = image_dependencies(conv, x)
    expected = raster_before(7, 7, kernel_size // 2, inclusive=mask_type == "B")
    assert torch.equal(deps, expected)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_channel_groups_at_the_centre_pixel(mask_type):
    groups, per_in, per_out = 3, 1, 2  # R, G, B in; two outputs per colour
    conv = MaskedConv2d(groups * per_in, groups * per_out, 3, mask_type, channel_groups=3)
    x = torch.randn(1, 3, 5, 5, generator=generator(), dtype=torch.float64, requires_grad=True)
    out = conv.double()(x)
    rows = [torch.autograd.grad(out[0, o, 2, 2], x, retain_graph=True)[0][0] for o in range(6)]
    jac = torch.stack(rows)  # [6 outputs at (2, 2), 3 inputs, 5, 5]
    centre = (jac[:, :, 2, 2] != 0).int()
    group_out, group_in = torch.arange(6) // per_out, torch.arange(3) // per_in
    if mask_type == "A":
        expected = group_in[None, :] < group_out[:, None]
    else:
        expected = group_in[None, :] <= group_out[:, None]
    assert torch.equal(centre.bool(), expected)
    # every channel of every earlier pixel in the 3x3 window, and nothing else
    assert jac[:, :, 1, 1:4].abs().amin() > 0 and jac[:, :, 2, 1].abs().amin() > 0
    assert not jac[:, :, :, [0, 4]].any() and not jac[:, :, 0].any()
    assert not jac[:, :, 3:, :].any() and not jac[:, :, 2, 3:].any()


def test_gated_stack_receptive_field_is_all_earlier_pixels_with_no_blind_spot():
    for n_layers, kernel_size, first_kernel_size in ((3, 3, 3), (2, 3, 5)):
        stack = GatedPixelCNNStack(1, 4, n_layers, kernel_size, first_kernel_size).double()
        x = torch.randn(2, 1, 10, 10, generator=generator(), dtype=torch.float64)
        deps = image_dependencies(stack, x)
        expected = gated_field(10, 10, stack.receptive_radius)
        assert torch.equal(deps, expected), (n_layers, kernel_size, first_kernel_size)
        assert not (deps & ~raster_before(10, 10)).any()


def test_a_plain_masked_conv_stack_has_a_blind_spot_that_the_field_test_catches():
    stack = nn.Sequential(
        MaskedConv2d(1, 4, 3, "A"), nn.Tanh(), MaskedConv2d(4, 4, 3, "B"), nn.Tanh(),
        MaskedConv2d(4, 4, 3, "B"),
    ).double()  # fmt: skip
    x = torch.randn(2, 1, 10, 10, generator=generator(), dtype=torch.float64)
    deps = image_dependencies(stack, x)
    assert not (deps & ~raster_before(10, 10)).any()  # still causal...
    expected = gated_field(10, 10, 3)
    missing = expected & ~deps
    assert missing.any()  # ...but blind: pixels before (r, c) that it cannot see
    # the blind spot lies above and to the right: rightward reach grows only by going up one
    # row per layer, so for (5, 5) it sees (3, 7) and (4, 6) but misses (4, 7), (4, 8), (3, 8)
    assert deps[5, 5, 3, 7] and deps[5, 5, 4, 6]
    # (row 1 is missing too, only because this stack reaches 3 rows up and the gated one 4)
    assert missing[5, 5, 2:].nonzero().add(torch.tensor([2, 0])).tolist() == [
        [3, 8],
        [4, 7],
        [4, 8],
    ]


def test_gated_layer_shapes_conditioning_and_refusals():
    layer = GatedPixelCNNLayer(1, 8, 3, "A", cond_dim=5)
    v, h = layer(torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6), torch.randn(2, 5))
    assert v.shape == h.shape == (2, 8, 6, 6) and v.dtype == torch.float32
    with pytest.raises(ValueError, match="cond is required"):
        layer(torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6))
    with pytest.raises(ValueError, match="in_channels=4 must equal channels=8"):
        GatedPixelCNNLayer(4, 8, 3, "B")
    stack = GatedPixelCNNStack(1, 8, 2, cond_dim=3).double()
    out = stack(torch.randn(2, 1, 6, 6, dtype=torch.float64), torch.randn(2, 3).double())
    assert out.shape == (2, 8, 6, 6) and out.dtype == torch.float64


@pytest.mark.parametrize(
    "build",
    [
        lambda k, t: MaskedConv2d(1, 4, k, t),
        lambda k, t: raster_mask(1, 4, k, t),
        lambda k, t: GatedPixelCNNLayer(1, 4, k, t),
    ],
)
def test_masked_convs_refuse_even_kernels_and_unknown_mask_types(build):
    with pytest.raises(ValueError, match="kernel_size must be an odd integer"):
        build(4, "A")
    with pytest.raises(ValueError, match="mask_type must be 'A' or 'B', got 'C'"):
        build(3, "C")


def test_masked_conv_refuses_channels_not_divisible_into_groups():
    with pytest.raises(ValueError, match="out_channels=4 must be a multiple of channel_groups=3"):
        MaskedConv2d(3, 4, 3, "A", channel_groups=3)


# --- causal convolutions and WaveNet ------------------------------------------------------------


def causal_pattern(n: int, offsets) -> torch.Tensor:
    """bool [T, T]: output t depends on input t - o for each offset o (inside 0..T-1)."""
    t = torch.arange(n)
    return torch.stack([(t[:, None] - o) == t[None, :] for o in offsets]).any(0)


@pytest.mark.parametrize("include_current", [True, False])
def test_causal_conv_taps_are_exactly_the_dilated_past(include_current):
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=2, include_current=include_current)
    x = torch.randn(2, 2, 16, generator=generator(), dtype=torch.float64)
    out = conv.double()(x)
    assert out.shape == (2, 3, 16) and out.dtype == torch.float64
    deps = sequence_dependencies(conv, x)
    shift = 0 if include_current else 1
    assert torch.equal(deps, causal_pattern(16, [shift, shift + 2, shift + 4]))


def test_wavenet_stack_output_t_sees_exactly_its_receptive_field_before_t():
    net = WaveNetStack(1, 4, residual_channels=8, skip_channels=16, dilations=(1, 2, 4)).double()
    assert net.receptive_field == 9
    x = torch.randn(2, 1, 24, generator=generator(), dtype=torch.float64)
    out = net(x)
    assert out.shape == (2, 4, 24) and out.dtype == torch.float64
    deps = sequence_dependencies(net, x)
    assert torch.equal(deps, causal_pattern(24, range(1, 10)))


def test_wavenet_block_is_causal_inclusive_and_takes_a_condition():
    block = WaveNetBlock(4, 6, kernel_size=2, dilation=3, cond_dim=2).double()
    cond = torch.randn(2, 2, dtype=torch.float64)
    x = torch.randn(2, 4, 12, generator=generator(), dtype=torch.float64)
    residual, skip = block(x, cond)
    assert residual.shape == (2, 4, 12) and skip.shape == (2, 6, 12)
    deps = sequence_dependencies(lambda v: block(v, cond)[0], x)
    assert torch.equal(deps, causal_pattern(12, [0, 3]))
    with pytest.raises(ValueError, match="cond is required"):
        block(x)


def test_wavenet_block_step_gives_forward_at_each_time_from_its_taps():
    block = WaveNetBlock(4, 6, kernel_size=3, dilation=2, cond_dim=2).double()
    cond = torch.randn(2, 2, dtype=torch.float64)
    x = torch.randn(2, 4, 9, generator=generator(), dtype=torch.float64)
    residual, skip = block(x, cond)
    padded = torch.nn.functional.pad(x, (4, 0))  # (kernel_size - 1) * dilation zeros in front
    for t in range(9):
        taps = padded[:, :, t : t + 5 : 2]  # t-4, t-2, t
        step_residual, step_skip = block.step(x[:, :, t : t + 1], taps, cond)
        torch.testing.assert_close(step_residual[:, :, 0], residual[:, :, t])
        torch.testing.assert_close(step_skip[:, :, 0], skip[:, :, t])


def test_causal_conv_refuses_bad_sizes_by_name():
    with pytest.raises(ValueError, match="kernel_size"):
        CausalConv1d(1, 1, 0)
    with pytest.raises(ValueError, match="dilation"):
        CausalConv1d(1, 1, 2, dilation=0)
    with pytest.raises(ValueError, match=r"x must be \[B,C,T\]"):
        CausalConv1d(1, 1, 2)(torch.zeros(1, 5))


# --- causal attention ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
def test_transformer_output_t_depends_on_exactly_the_inputs_up_to_t(kind):
    dim, n = 16, 7
    positions = PositionalEmbedding(n, dim, kind)
    blocks = nn.Sequential(TransformerBlock(dim, 4), TransformerBlock(dim, 4))
    model = nn.Sequential(blocks).double()
    positions.double()

    def f(x):  # x [B, dim, T] so that the helper's channel/time layout applies
        tokens = x.transpose(1, 2) + positions(x.shape[-1])
        return model(tokens).transpose(1, 2)

    x = torch.randn(2, dim, n, generator=generator(), dtype=torch.float64)
    deps = sequence_dependencies(f, x)
    assert torch.equal(deps, torch.ones(n, n, dtype=torch.bool).tril())
    assert f(x).dtype == torch.float64


def test_transformer_block_step_with_caches_gives_forward_at_each_position():
    block = TransformerBlock(8, 2).double().eval()
    x = torch.randn(3, 6, 8, generator=generator(), dtype=torch.float64)
    full = block(x)
    keys = torch.zeros(3, 2, 6, 4, dtype=torch.float64)  # [B, heads, T, head dim]
    values = torch.zeros_like(keys)
    for t in range(6):
        torch.testing.assert_close(block.step(x[:, t], keys, values, t), full[:, t])
    # The caches now hold every position's keys and values: a wrong one changes the output.
    keys[:, :, 0] += 1.0
    assert not torch.allclose(block.step(x[:, 5], keys, values, 5), full[:, 5])


def test_causal_attention_matches_an_explicit_masked_softmax():
    attention = CausalSelfAttention(8, 2).double().eval()
    x = torch.randn(3, 5, 8, generator=generator(), dtype=torch.float64)
    q, k, v = attention.qkv(x).reshape(3, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / 2.0  # sqrt(head dim 4)
    scores = scores.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 5, 8)
    torch.testing.assert_close(attention(x), attention.proj(y))


def test_attention_and_positions_refuse_bad_arguments_by_name():
    with pytest.raises(ValueError, match="n_heads must divide dim"):
        CausalSelfAttention(10, 4)
    with pytest.raises(ValueError, match="kind must be one of"):
        PositionalEmbedding(8, 4, "rotary")
    with pytest.raises(ValueError, match="length must be in 0..max_len=8"):
        PositionalEmbedding(8, 4)(9)
    with pytest.raises(ValueError, match=r"x must be \[B,T,8\]"):
        CausalSelfAttention(8, 2)(torch.zeros(2, 3, 6))


# --- MLP, residual blocks, U-Net, embeddings ----------------------------------------------------


def test_mlp_shapes_and_refusals():
    mlp = MLP(5, [16, 16], 3, activation=nn.SiLU, final_activation=nn.Sigmoid)
    out = mlp(torch.randn(4, 2, 5))
    assert out.shape == (4, 2, 3) and bool(((out > 0) & (out < 1)).all())
    assert sum(isinstance(m, nn.Linear) for m in mlp.modules()) == 3
    with pytest.raises(ValueError, match="hidden widths"):
        MLP(5, [0], 3)
    with pytest.raises(ValueError, match="in_features"):
        MLP(0, [4], 3)


def test_res_block_and_spatial_attention_shapes():
    block = ResBlock2d(4, 12, emb_dim=6).double()
    x = torch.randn(2, 4, 7, 5, dtype=torch.float64)
    assert block(x, torch.randn(2, 6, dtype=torch.float64)).shape == (2, 12, 7, 5)
    with pytest.raises(ValueError, match="emb is required"):
        block(x)
    attention = SelfAttention2d(12, n_heads=3)
    assert attention(torch.randn(2, 12, 3, 4)).shape == (2, 12, 3, 4)
    with pytest.raises(ValueError, match="n_heads must divide channels=12"):
        SelfAttention2d(12, n_heads=5)


def test_unet_keeps_any_image_size_and_uses_the_time_embedding():
    embed = TimestepEmbedding(16)
    unet = UNet(1, 2, base_channels=8, channel_mults=(1, 2, 2), emb_dim=16, mid_attention=True)
    x = torch.randn(2, 1, 28, 28)
    t = torch.tensor([0, 700])
    out = unet(x, embed(t))
    assert out.shape == (2, 2, 28, 28) and out.dtype == torch.float32
    other = unet(x, embed(torch.tensor([10, 10])))
    assert not torch.allclose(out, other)  # the embedding reaches the output
    plain = UNet(3, 3, base_channels=8, channel_mults=(1, 2), n_res_blocks=2, attention_levels=(1,))
    assert plain(torch.randn(1, 3, 13, 9)).shape == (1, 3, 13, 9)
    with pytest.raises(ValueError, match="emb must be"):
        unet(x)
    with pytest.raises(ValueError, match="emb given"):
        plain(torch.randn(1, 3, 8, 8), torch.randn(1, 16))
    with pytest.raises(ValueError, match="attention_levels"):
        UNet(1, 1, channel_mults=(1, 2), attention_levels=(2,))


def test_sinusoidal_embeddings():
    emb = sinusoidal_embedding(torch.tensor([0, 3]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    torch.testing.assert_close(emb[1, 0], torch.sin(torch.tensor(3.0)))  # w_0 = 1
    assert SinusoidalEmbedding(7)(torch.arange(3.0)).shape == (3, 7)
    table = PositionalEmbedding(10, 6, "sinusoidal")
    torch.testing.assert_close(table(4), sinusoidal_embedding(torch.arange(4), 6))
    assert sum(p.numel() for p in table.parameters()) == 0
    assert "table" not in table.state_dict()
