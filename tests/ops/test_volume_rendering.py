"""Volume rendering: C++/CUDA parity with the torch reference, float64 gradcheck, closed
forms, early stopping, empty input and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d._backend import available_impls
from mp3d.ops._validation import HostReads, checks
from mp3d.ops.volume_rendering import render_rays, render_weights
from tests.ops.scenes import packed_samples

KERNEL_IMPLS = [i for i in ("cpp",) if i in available_impls("volume_rendering")]
needs_cpp = pytest.mark.skipif("cpp" not in available_impls(), reason="mp3d._C not available")


def _render_all(s: dict, impl: str, background=None, early_stop_eps=1e-4):
    rgb, opacity, depth = render_rays(
        s["sigmas"],
        s["rgbs"],
        s["t_starts"],
        s["t_ends"],
        s["ray_indices"],
        s["n_rays"],
        background=background,
        early_stop_eps=early_stop_eps,
        impl=impl,
    )
    weights = render_weights(
        s["sigmas"],
        s["t_starts"],
        s["t_ends"],
        s["ray_indices"],
        s["n_rays"],
        early_stop_eps=early_stop_eps,
        impl=impl,
    )
    return weights, rgb, opacity, depth


# ----------------------------------------------------------------------------- parity


@needs_cpp
@pytest.mark.parametrize("sigma_scale", [0.5, 3.0, 200.0])
def test_cpp_forward_matches_reference(sigma_scale):
    s = packed_samples(n_rays=64, max_samples=32, sigma_scale=sigma_scale, seed=1)
    expected = _render_all(s, "torch", background=torch.tensor([0.2, 0.5, 1.0]))
    actual = _render_all(s, "cpp", background=torch.tensor([0.2, 0.5, 1.0]))
    for name, e, a in zip(("weights", "rgb", "opacity", "depth"), expected, actual):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5, msg=name)


@needs_cpp
def test_cpp_backward_matches_reference():
    s = packed_samples(n_rays=64, max_samples=32, seed=2)
    grads = {}
    for impl in ("torch", "cpp"):
        inputs = {
            k: s[k].clone().requires_grad_() for k in ("sigmas", "rgbs", "t_starts", "t_ends")
        }
        rgb, opacity, depth = render_rays(
            inputs["sigmas"],
            inputs["rgbs"],
            inputs["t_starts"],
            inputs["t_ends"],
            s["ray_indices"],
            s["n_rays"],
            background=0.7,
            impl=impl,
        )
        g = torch.Generator().manual_seed(3)
        loss = (
            (rgb * torch.rand(rgb.shape, generator=g)).sum()
            + (opacity * torch.rand(opacity.shape, generator=g)).sum()
            + (depth * torch.rand(depth.shape, generator=g)).sum()
        )
        loss.backward()
        grads[impl] = {k: v.grad for k, v in inputs.items()}
    for name in grads["torch"]:
        torch.testing.assert_close(
            grads["cpp"][name], grads["torch"][name], rtol=1e-4, atol=1e-5, msg=name
        )


@needs_cpp
def test_backward_with_one_output_used():
    s = packed_samples(seed=4)
    grads = []
    for impl in ("torch", "cpp"):
        sigmas = s["sigmas"].clone().requires_grad_()
        _, opacity, _ = render_rays(
            sigmas, s["rgbs"], s["t_starts"], s["t_ends"], s["ray_indices"], s["n_rays"], impl=impl
        )
        opacity.sum().backward()
        grads.append(sigmas.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("early_stop_eps", [0.0, 1e-2])
def test_render_rays_gradcheck(impl, early_stop_eps):
    s = packed_samples(n_rays=8, max_samples=6, dtype=torch.float64, seed=5, sigma_scale=8.0)
    inputs = tuple(s[k].clone().requires_grad_() for k in ("sigmas", "rgbs", "t_starts", "t_ends"))
    background = torch.rand(s["n_rays"], 3, dtype=torch.float64, requires_grad=True)

    def fn(sigmas, rgbs, t_starts, t_ends, bg):
        return render_rays(
            sigmas,
            rgbs,
            t_starts,
            t_ends,
            s["ray_indices"],
            s["n_rays"],
            background=bg,
            early_stop_eps=early_stop_eps,
            impl=impl,
        )

    assert torch.autograd.gradcheck(fn, (*inputs, background))


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_render_weights_gradcheck(impl):
    s = packed_samples(n_rays=8, max_samples=6, dtype=torch.float64, seed=6)
    inputs = tuple(s[k].clone().requires_grad_() for k in ("sigmas", "t_starts", "t_ends"))

    def fn(sigmas, t_starts, t_ends):
        return render_weights(sigmas, t_starts, t_ends, s["ray_indices"], s["n_rays"], impl=impl)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_weights_and_colour_gradcheck_together(impl):
    """Gradients flowing into both the weights and the composited colour at once."""
    s = packed_samples(n_rays=6, max_samples=5, dtype=torch.float64, seed=7)
    sigmas = s["sigmas"].clone().requires_grad_()

    def fn(sig):
        w = render_weights(
            sig, s["t_starts"], s["t_ends"], s["ray_indices"], s["n_rays"], impl=impl
        )
        rgb, _, _ = render_rays(
            sig, s["rgbs"], s["t_starts"], s["t_ends"], s["ray_indices"], s["n_rays"], impl=impl
        )
        return (w**2).sum() + rgb.sum()

    assert torch.autograd.gradcheck(fn, (sigmas,))


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("n_pieces", [1, 7])
def test_constant_density_segment(impl, n_pieces):
    """Constant sigma over [a, a + L], in one sample or several: opacity = 1 - exp(-sigma L)."""
    sigma, a, length = 1.7, 2.0, 0.9
    edges = torch.linspace(a, a + length, n_pieces + 1, dtype=torch.float64)
    colour = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    rgb, opacity, depth = render_rays(
        torch.full((n_pieces,), sigma, dtype=torch.float64),
        colour.expand(n_pieces, 3),
        edges[:-1],
        edges[1:],
        torch.zeros(n_pieces, dtype=torch.long),
        1,
        background=1.0,
        early_stop_eps=0.0,
        impl=impl,
    )
    expected_opacity = 1 - math.exp(-sigma * length)
    assert opacity.item() == pytest.approx(expected_opacity, rel=1e-12)
    torch.testing.assert_close(rgb[0], colour * expected_opacity + (1 - expected_opacity))
    if n_pieces == 1:
        assert depth.item() == pytest.approx(expected_opacity * (a + length / 2), rel=1e-12)
    else:
        # Continuous expected depth: int t sigma exp(-sigma (t - a)) dt over the segment,
        # approximated by midpoints; close to the analytic value.
        analytic = (
            a * expected_opacity + (1 - math.exp(-sigma * length) * (1 + sigma * length)) / sigma
        )
        assert depth.item() == pytest.approx(analytic, rel=5e-3)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_early_stop_zeroes_later_samples(impl):
    """Once T < eps, the remaining samples get weight 0 and no gradient."""
    sigmas = torch.tensor([50.0, 50.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    t_starts = torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64)
    t_ends = t_starts + 0.1
    rgbs = torch.rand(4, 3, dtype=torch.float64)
    weights = render_weights(
        sigmas,
        t_starts,
        t_ends,
        torch.zeros(4, dtype=torch.long),
        1,
        early_stop_eps=1e-3,
        impl=impl,
    )
    # T after the first sample is exp(-5) ~ 6.7e-3 >= 1e-3; after the second exp(-10) < 1e-3.
    assert weights[0] > 0 and weights[1] > 0
    assert weights[2].item() == 0.0 and weights[3].item() == 0.0
    rgb, _, _ = render_rays(
        sigmas,
        rgbs,
        t_starts,
        t_ends,
        torch.zeros(4, dtype=torch.long),
        1,
        early_stop_eps=1e-3,
        impl=impl,
    )
    rgb.sum().backward()
    assert sigmas.grad[2].item() == 0.0 and sigmas.grad[3].item() == 0.0
    assert sigmas.grad[0].item() != 0.0


# ----------------------------------------------------------------------------- empty input


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_no_samples_gives_background(impl):
    empty = torch.zeros(0)
    rgb, opacity, depth = render_rays(
        empty,
        torch.zeros(0, 3),
        empty,
        empty,
        torch.zeros(0, dtype=torch.long),
        5,
        background=torch.tensor([0.1, 0.2, 0.3]),
        impl=impl,
    )
    assert rgb.shape == (5, 3) and opacity.shape == (5,) and depth.shape == (5,)
    torch.testing.assert_close(rgb, torch.tensor([[0.1, 0.2, 0.3]]).expand(5, 3))
    assert opacity.abs().sum() == 0 and depth.abs().sum() == 0
    weights = render_weights(empty, empty, empty, torch.zeros(0, dtype=torch.long), 5, impl=impl)
    assert weights.shape == (0,)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_zero_rays(impl):
    empty = torch.zeros(0, requires_grad=True)
    rgb, opacity, depth = render_rays(
        empty, torch.zeros(0, 3), empty, empty, torch.zeros(0, dtype=torch.long), 0, impl=impl
    )
    assert rgb.shape == (0, 3) and opacity.shape == (0,) and depth.shape == (0,)
    (rgb.sum() + opacity.sum()).backward()
    assert empty.grad.shape == (0,)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_empty_rays_between_others(impl):
    s = packed_samples(n_rays=10, seed=8)
    rgb, opacity, depth = render_rays(
        s["sigmas"],
        s["rgbs"],
        s["t_starts"],
        s["t_ends"],
        s["ray_indices"],
        s["n_rays"],
        background=0.25,
        impl=impl,
    )
    empty_rays = torch.ones(10, dtype=torch.bool)
    empty_rays[s["ray_indices"]] = False
    assert empty_rays.any()
    torch.testing.assert_close(rgb[empty_rays], torch.full_like(rgb[empty_rays], 0.25))
    assert opacity[empty_rays].abs().sum() == 0 and depth[empty_rays].abs().sum() == 0


# ----------------------------------------------------------------------------- bad input


def _bad_cases():
    base = packed_samples(n_rays=6, max_samples=5, seed=9)
    n = base["sigmas"].shape[0]

    def case(**changes):
        return {**base, **changes}

    unsorted = base["ray_indices"].flip(0)
    t_swapped = base["t_starts"].clone()
    t_swapped[1] = base["t_ends"][1] + 1.0
    negative = base["sigmas"].clone()
    negative[2] = -1.0
    nan_rgbs = base["rgbs"].clone()
    nan_rgbs[0, 1] = float("nan")
    negative_index = base["ray_indices"].clone()
    negative_index[0] = -1
    inf_t = base["t_ends"].clone()
    inf_t[-1] = float("inf")
    return {
        "short t_starts": (case(t_starts=base["t_starts"][:-1]), "t_starts"),
        "short rgbs": (case(rgbs=base["rgbs"][:-1]), "rgbs"),
        "rgbs with 4 channels": (case(rgbs=torch.rand(n, 4)), "rgbs"),
        "short ray_indices": (case(ray_indices=base["ray_indices"][1:]), "ray_indices"),
        "unsorted ray_indices": (case(ray_indices=unsorted), "ray_indices must be sorted"),
        "ray index out of range": (case(n_rays=2), "ray_indices must be in"),
        "negative ray index": (case(ray_indices=negative_index), "ray_indices must be in"),
        "t_end < t_start": (case(t_starts=t_swapped), "t_ends must be >= t_starts"),
        "negative sigma": (case(sigmas=negative), "sigmas must be >= 0"),
        "NaN colour": (case(rgbs=nan_rgbs), "rgbs must be finite"),
        "infinite t": (case(t_ends=inf_t), "t_ends must be finite"),
        "int32 ray_indices": (
            case(ray_indices=base["ray_indices"].int()),
            "ray_indices must have dtype torch.int64",
        ),
        "float16 sigmas": (case(sigmas=base["sigmas"].half()), "sigmas must have dtype"),
        "mixed dtypes": (
            case(t_ends=base["t_ends"].double()),
            "t_ends must have the dtype of sigmas",
        ),
        "2-D sigmas": (case(sigmas=base["sigmas"][:, None]), "sigmas must have shape"),
        "list sigmas": (case(sigmas=base["sigmas"].tolist()), "sigmas must be a torch.Tensor"),
        "other device": (case(rgbs=base["rgbs"].to("meta")), "rgbs must be on the same device"),
        "negative n_rays": (case(n_rays=-1), "n_rays must be an int >= 0, got -1"),
        "float n_rays": (case(n_rays=6.0), "n_rays must be an int"),
    }


BAD_CASES = _bad_cases()


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_raises_value_error(name, impl):
    s, message = BAD_CASES[name]
    with pytest.raises(ValueError, match=message):
        render_rays(
            s["sigmas"],
            s["rgbs"],
            s["t_starts"],
            s["t_ends"],
            s["ray_indices"],
            s["n_rays"],
            impl=impl,
        )


def test_bad_arguments_name_themselves():
    s = packed_samples(n_rays=4, seed=10)
    args = (s["sigmas"], s["rgbs"], s["t_starts"], s["t_ends"], s["ray_indices"], s["n_rays"])
    with pytest.raises(ValueError, match="background must be"):
        render_rays(*args, background=torch.ones(2))
    with pytest.raises(ValueError, match="early_stop_eps must be in"):
        render_rays(*args, early_stop_eps=1.5)
    with pytest.raises(ValueError, match="impl must be one of"):
        render_rays(*args, impl="fast")
    with pytest.raises(ValueError, match="rgbs must be a tensor"):
        render_rays(s["sigmas"], None, *args[2:])


def test_unavailable_impl_raises():
    s = packed_samples(n_rays=4, seed=11)
    args = (s["sigmas"], s["rgbs"], s["t_starts"], s["t_ends"], s["ray_indices"], s["n_rays"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="impl='cuda' is not available"):
            render_rays(*args, impl="cuda")


@needs_cpp
def test_cpp_check_is_second_line_of_defence():
    """The C++ op rejects bad shapes itself (ValueError) when called without the wrapper."""
    with pytest.raises(ValueError, match="t_starts and t_ends must have"):
        torch.ops.mp3d.volume_render_fwd(
            torch.zeros(3), None, torch.zeros(2), torch.zeros(3), torch.tensor([0, 3]), 0.0
        )


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_cuda_forward_and_backward_match_reference():
    s = packed_samples(n_rays=256, max_samples=64, seed=12)
    results = {}
    for impl, device in (("torch", "cpu"), ("cuda", "cuda")):
        inputs = {
            k: s[k].to(device).clone().requires_grad_()
            for k in ("sigmas", "rgbs", "t_starts", "t_ends")
        }
        rgb, opacity, depth = render_rays(
            inputs["sigmas"],
            inputs["rgbs"],
            inputs["t_starts"],
            inputs["t_ends"],
            s["ray_indices"].to(device),
            s["n_rays"],
            background=0.5,
            impl=impl,
        )
        (rgb.sum() + 0.3 * opacity.sum() + 0.1 * depth.sum()).backward()
        results[impl] = [t.detach().cpu() for t in (rgb, opacity, depth)] + [
            inputs[k].grad.cpu() for k in ("sigmas", "rgbs", "t_starts", "t_ends")
        ]
    for expected, actual in zip(results["torch"], results["cuda"]):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_cuda_gradcheck():
    s = packed_samples(n_rays=8, max_samples=6, dtype=torch.float64, seed=13, device="cuda")
    inputs = tuple(s[k].clone().requires_grad_() for k in ("sigmas", "rgbs", "t_starts", "t_ends"))

    def fn(sigmas, rgbs, t_starts, t_ends):
        return render_rays(
            sigmas,
            rgbs,
            t_starts,
            t_ends,
            s["ray_indices"],
            s["n_rays"],
            background=0.3,
            impl="cuda",
        )

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.gpu
def test_cuda_empty_input():
    empty = torch.zeros(0, device="cuda")
    rgb, opacity, depth = render_rays(
        empty,
        torch.zeros(0, 3, device="cuda"),
        empty,
        empty,
        torch.zeros(0, dtype=torch.long, device="cuda"),
        3,
        background=1.0,
        impl="cuda",
    )
    assert rgb.shape == (3, 3) and bool((rgb == 1).all()) and opacity.abs().sum() == 0


# ----------------------------------------------------------------------------- scalar arguments


def _args(s: dict) -> tuple:
    return (s["sigmas"], s["rgbs"], s["t_starts"], s["t_ends"], s["ray_indices"], s["n_rays"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"early_stop_eps": float("nan")}, "early_stop_eps must be finite, got nan"),
        ({"early_stop_eps": -0.1}, r"early_stop_eps must be in \[0, 1\), got -0.1"),
        ({"early_stop_eps": 1.0}, r"early_stop_eps must be in \[0, 1\), got 1.0"),
        ({"early_stop_eps": None}, "early_stop_eps must be a real number, got None"),
        ({"background": float("inf")}, "background must be finite, got inf"),
        ({"background": [0.0, float("nan"), 1.0]}, r"background\[1\] must be finite"),
        (
            {"background": torch.tensor([0.0, float("nan"), 1.0])},
            "background must be finite, got 1 NaN",
        ),
        ({"background": torch.tensor([0, 1, 1])}, "background must be a floating-point tensor"),
    ],
)
@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_bad_scalar_arguments_name_themselves(kwargs, match, impl):
    s = packed_samples(n_rays=4, seed=14)
    with pytest.raises(ValueError, match=match):
        render_rays(*_args(s), impl=impl, **kwargs)


def test_outputs_too_large_for_memory_are_refused_up_front():
    empty = torch.zeros(0)
    with pytest.raises(
        ValueError,
        match=r"rendering 10000000000 rays needs .* GiB of outputs, "
        r"more than the .* GiB of memory on cpu",
    ):
        render_rays(
            empty, torch.zeros(0, 3), empty, empty, torch.zeros(0, dtype=torch.long), 10**10
        )
    with pytest.raises(ValueError, match="rendering 10000000000 rays"):
        render_weights(empty, empty, empty, torch.zeros(0, dtype=torch.long), 10**10)


# ----------------------------------------------------------------------------- value checks


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_value_checks_are_one_read_and_can_be_skipped(impl):
    s = packed_samples(n_rays=6, max_samples=5, seed=15)
    with HostReads() as reads:
        render_rays(*_args(s), background=torch.tensor([0.1, 0.2, 0.3]), impl=impl)
    if impl != "torch":  # the reference reads the longest ray's length itself
        assert reads.calls == {"tolist": 1}
    checked = reads.calls.get("tolist", 0)
    with HostReads() as reads:
        render_rays(*_args(s), impl=impl, validate=False)
    assert reads.calls.get("tolist", 0) == checked - 1
    negative = {**s, "sigmas": -s["sigmas"]}
    with pytest.raises(ValueError, match="sigmas must be >= 0"):
        render_rays(*_args(negative), impl=impl)
    render_rays(*_args(negative), impl=impl, validate=False)
    with checks(False):
        render_weights(*_args(negative)[:1], *_args(negative)[2:], impl=impl)
        with pytest.raises(ValueError, match="sigmas must be >= 0"):
            render_weights(*_args(negative)[:1], *_args(negative)[2:], impl=impl, validate=True)


# ----------------------------------------------------------------------------- double backward


def test_reference_second_derivatives():
    s = packed_samples(n_rays=4, max_samples=4, dtype=torch.float64, seed=16)
    inputs = tuple(s[k].clone().requires_grad_() for k in ("sigmas", "rgbs"))

    def fn(sigmas, rgbs):
        return render_rays(
            sigmas,
            rgbs,
            s["t_starts"],
            s["t_ends"],
            s["ray_indices"],
            s["n_rays"],
            background=0.3,
            impl="torch",
        )

    assert torch.autograd.gradgradcheck(fn, inputs)


@needs_cpp
def test_kernel_double_backward_raises():
    """create_graph=True through the kernel used to give silently wrong second derivatives
    (the first gradient was treated as a constant); now differentiating it raises."""
    s = packed_samples(n_rays=4, max_samples=4, dtype=torch.float64, seed=17)
    sigmas = s["sigmas"].clone().requires_grad_()
    rgb, opacity, _ = render_rays(sigmas, *_args(s)[1:], impl="cpp")
    (grad,) = torch.autograd.grad((rgb**2).sum() + opacity.sum(), sigmas, create_graph=True)
    with pytest.raises(
        NotImplementedError, match="mp3d.ops.volume_rendering: .*no double backward.*impl='torch'"
    ):
        grad.sum().backward()
    # first derivatives alone still work with create_graph=True
    assert grad.shape == sigmas.shape
