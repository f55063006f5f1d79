"""Gaussian splatting: hand-computed projection, closed-form images, depth order, SH colours,
float64 gradcheck, empty scenes and bad input, for the torch reference and the C++ kernels;
C++ parity with the reference (forward and every gradient) on random scenes."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d._backend import available_impls
from mp3d.ops._validation import HostReads, checks, checks_enabled
from mp3d.ops.gaussians import (
    TILE_SIZE,
    project_gaussians,
    quaternion_to_rotation,
    rasterize,
    rasterize_reference,
    rasterize_splats,
    sh_colors,
)
from tests.ops.scenes import C0, IDENTITY_QUAT, camera, smooth_scene

KERNEL_IMPLS = [i for i in ("cpp",) if i in available_impls("gaussians")]
IMPLS = ["torch"] + KERNEL_IMPLS
needs_cpp = pytest.mark.skipif("cpp" not in available_impls(), reason="mp3d._C not available")


# ----------------------------------------------------------------------------- projection


@pytest.mark.parametrize("impl", IMPLS)
def test_projection_on_the_optical_axis_by_hand(impl):
    viewmat, K = camera(fx=20.0, fy=24.0, cx=8.0, cy=6.0)
    depth, scale = 4.0, 0.5
    means = torch.tensor([[0.0, 0.0, depth]], dtype=torch.float64)
    quats = torch.tensor([IDENTITY_QUAT], dtype=torch.float64)
    scales = torch.tensor([[scale, scale, scale]], dtype=torch.float64)
    means2d, conics, depths, radii, visible = project_gaussians(
        means, quats, scales, viewmat, K, 16, 12, impl=impl
    )
    var_x = (20.0 * scale / depth) ** 2 + 0.3
    var_y = (24.0 * scale / depth) ** 2 + 0.3
    torch.testing.assert_close(means2d, torch.tensor([[8.0, 6.0]], dtype=torch.float64))
    torch.testing.assert_close(
        conics, torch.tensor([[1 / var_x, 0.0, 1 / var_y]], dtype=torch.float64)
    )
    assert depths.tolist() == [depth]
    assert radii.tolist() == [math.ceil(3 * math.sqrt(var_y))]
    assert visible.tolist() == [True]


@pytest.mark.parametrize("impl", IMPLS)
def test_projection_rotated_anisotropic_gaussian(impl):
    """A 90 degree turn about z swaps the x and y extents in the image."""
    viewmat, K = camera(fx=20.0, fy=20.0)
    half = math.sqrt(0.5)
    quats = torch.tensor([[half, 0.0, 0.0, half]], dtype=torch.float64)
    scales = torch.tensor([[0.4, 0.1, 0.2]], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    _, conics, _, _, _ = project_gaussians(means, quats, scales, viewmat, K, 16, 12, impl=impl)
    var_x, var_y = (10.0 * 0.1) ** 2 + 0.3, (10.0 * 0.4) ** 2 + 0.3
    torch.testing.assert_close(
        conics, torch.tensor([[1 / var_x, 0.0, 1 / var_y]], dtype=torch.float64)
    )


def test_quaternions_are_normalised_w_first():
    rotation = quaternion_to_rotation(torch.tensor([[2.0, 0.0, 0.0, 2.0]], dtype=torch.float64))
    expected = torch.tensor(
        [[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64
    )
    torch.testing.assert_close(rotation, expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_culling_behind_camera_and_outside_image(impl):
    viewmat, K = camera(fx=20.0, fy=20.0, cx=8.0, cy=6.0)
    means = torch.tensor(
        [
            [0.0, 0.0, -2.0],  # behind the camera
            [0.0, 0.0, 0.005],  # in front of the camera, but closer than near
            [5.0, 0.0, 2.0],  # projects to x = 58, far right of a 16 px wide image
            [0.0, 0.0, 2.0],  # centre of the image
            [0.9, 0.0, 2.0],  # mean at x = 17 just outside, but its 3-sigma box overlaps
        ],
        dtype=torch.float64,
    )
    n = means.shape[0]
    quats = torch.tensor([IDENTITY_QUAT] * n, dtype=torch.float64)
    scales = torch.full((n, 3), 0.1, dtype=torch.float64)
    means2d, conics, _, radii, visible = project_gaussians(
        means, quats, scales, viewmat, K, 16, 12, impl=impl
    )
    assert visible.tolist() == [False, False, False, True, True]
    assert radii[:3].tolist() == [0, 0, 0] and bool((radii[3:] > 0).all())
    assert bool(torch.isfinite(means2d).all() and torch.isfinite(conics).all())

    culled = slice(0, 3)
    rgb, alpha, depth, _ = rasterize(
        means[culled],
        quats[culled],
        scales[culled],
        torch.full((3,), 0.9, dtype=torch.float64),
        torch.ones(3, 3, dtype=torch.float64),
        viewmat,
        K,
        16,
        12,
        background=0.25,
        impl=impl,
    )
    assert bool((rgb == 0.25).all() and (alpha == 0).all() and (depth == 0).all())


# ----------------------------------------------------------------------------- rasterization


@pytest.mark.parametrize("impl", IMPLS)
def test_single_isotropic_gaussian_matches_closed_form(impl):
    """Opacity 1 at a pixel centre hits the 0.99 cap; the far tails fall under 1/255."""
    width, height, depth, scale = 24, 20, 2.0, 0.2
    viewmat, K = camera(fx=20.0, fy=20.0, cx=12.5, cy=9.5)
    color = torch.tensor([0.9, 0.4, 0.1], dtype=torch.float64)
    background = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    rgb, alpha, depth_image, info = rasterize(
        torch.tensor([[0.0, 0.0, depth]], dtype=torch.float64),
        torch.tensor([IDENTITY_QUAT], dtype=torch.float64),
        torch.full((1, 3), scale, dtype=torch.float64),
        torch.tensor([1.0], dtype=torch.float64),
        color[None],
        viewmat,
        K,
        width,
        height,
        background=background,
        impl=impl,
    )
    variance = (20.0 * scale / depth) ** 2 + 0.3
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + 0.5,
        torch.arange(width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    expected = torch.exp(-0.5 * ((xs - 12.5) ** 2 + (ys - 9.5) ** 2) / variance).clamp(max=0.99)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    assert float(expected[9, 12]) == 0.99 and bool((expected == 0).any())
    torch.testing.assert_close(alpha, expected)
    torch.testing.assert_close(
        rgb, expected[..., None] * color + (1 - expected[..., None]) * background
    )
    torch.testing.assert_close(depth_image, expected * depth)
    torch.testing.assert_close(info["means2d"], torch.tensor([[12.5, 9.5]], dtype=torch.float64))


def _two_splats(depths, impl="torch"):
    """Two wide splats over the same pixel (0, 0), red and green, with the given depths."""
    means2d = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    conics = torch.tensor([[0.01, 0.0, 0.01]] * 2, dtype=torch.float64)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    opacities = torch.tensor([0.6, 0.3], dtype=torch.float64)
    return rasterize_splats(
        means2d,
        conics,
        colors,
        opacities,
        torch.tensor(depths, dtype=torch.float64),
        1,
        1,
        impl=impl,
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_front_to_back_order_follows_depth(impl):
    red_front, _, depth_red_front = _two_splats([1.0, 2.0], impl)
    green_front, alpha, depth_green_front = _two_splats([2.0, 1.0], impl)
    torch.testing.assert_close(
        red_front[0, 0], torch.tensor([0.6, 0.4 * 0.3, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        green_front[0, 0], torch.tensor([0.7 * 0.6, 0.3, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(alpha[0, 0], torch.tensor(1 - 0.4 * 0.7, dtype=torch.float64))
    torch.testing.assert_close(
        depth_red_front[0, 0], torch.tensor(0.6 * 1.0 + 0.4 * 0.3 * 2.0, dtype=torch.float64)
    )
    torch.testing.assert_close(
        depth_green_front[0, 0], torch.tensor(0.3 * 1.0 + 0.7 * 0.6 * 2.0, dtype=torch.float64)
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_compositing_stops_before_transmittance_falls_below_1e_4(impl):
    """Opacity 0.95: T after each = 0.05, 0.0025, 1.25e-4, 6.25e-6, so three are composited."""
    n = 5
    _, alpha, _ = rasterize_splats(
        torch.full((n, 2), 0.5, dtype=torch.float64),
        torch.tensor([[1e-6, 0.0, 1e-6]] * n, dtype=torch.float64),
        torch.ones(n, 3, dtype=torch.float64),
        torch.full((n,), 0.95, dtype=torch.float64),
        torch.arange(n, dtype=torch.float64),
        1,
        1,
        impl=impl,
    )
    torch.testing.assert_close(alpha[0, 0], torch.tensor(1 - 0.05**3, dtype=torch.float64))


def test_chunking_does_not_change_the_image():
    s = smooth_scene(dtype=torch.float32)
    means2d, conics, depths, _, _ = project_gaussians(
        s["means"], s["quats"], s["scales"], s["viewmat"], s["K"], s["width"], s["height"]
    )
    args = (means2d, conics, s["colors"], s["opacities"], depths, s["width"], s["height"])
    for whole, chunked in zip(
        rasterize_reference(*args), rasterize_reference(*args, chunk_pixels=5)
    ):
        torch.testing.assert_close(chunked, whole)


# ----------------------------------------------------------------------------- SH colours


@pytest.mark.parametrize("impl", IMPLS)
def test_sh_degree_0_is_c0_times_dc_plus_half(impl):
    g = torch.Generator().manual_seed(0)
    sh = torch.randn(6, 16, 3, generator=g) * 3.0
    colors = sh_colors(sh, torch.randn(6, 3, generator=g), 0, impl=impl)
    torch.testing.assert_close(colors, torch.clamp(C0 * sh[:, 0] + 0.5, min=0.0))
    assert bool((colors == 0).any())  # some negative values were clamped at 0


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_shapes_and_view_dependence(degree):
    g = torch.Generator().manual_seed(degree)
    sh = torch.randn(5, (degree + 1) ** 2, 3, generator=g) * 0.1
    a = sh_colors(sh, torch.tensor([[0.0, 0.0, 1.0]] * 5), degree)
    b = sh_colors(sh, torch.tensor([[0.3, -2.0, 0.5]] * 5), degree)
    assert a.shape == (5, 3)
    assert torch.equal(a, b) == (degree == 0)


@pytest.mark.parametrize("impl", IMPLS)
def test_sh_uses_only_the_requested_bands_and_unnormalised_directions(impl):
    g = torch.Generator().manual_seed(1)
    sh = torch.randn(4, 16, 3, generator=g) * 0.1
    directions = torch.randn(4, 3, generator=g)
    torch.testing.assert_close(
        sh_colors(sh, directions, 1, impl=impl), sh_colors(sh[:, :4], directions, 1, impl=impl)
    )
    torch.testing.assert_close(
        sh_colors(sh, directions * 7.0, 3, impl=impl), sh_colors(sh, directions, 3, impl=impl)
    )


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_projection(impl):
    s = smooth_scene()
    inputs = tuple(s[k].clone().requires_grad_() for k in ("means", "quats", "scales"))

    def project(means, quats, scales):
        return project_gaussians(means, quats, scales, s["viewmat"], s["K"], 8, 6, impl=impl)[:3]

    assert torch.autograd.gradcheck(project, inputs)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_sh_colors(impl):
    g = torch.Generator().manual_seed(2)
    sh = (torch.randn(3, 16, 3, generator=g, dtype=torch.float64) * 0.1).requires_grad_()
    directions = torch.randn(3, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: sh_colors(a, b, 3, impl=impl), (sh, directions))


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_rasterize_splats(impl):
    s = smooth_scene()
    means2d, conics, depths, _, _ = project_gaussians(
        s["means"], s["quats"], s["scales"], s["viewmat"], s["K"], 8, 6
    )
    inputs = tuple(
        t.detach().clone().requires_grad_()
        for t in (means2d, conics, s["colors"], s["opacities"], depths)
    )
    background = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda *x: rasterize_splats(*x, 8, 6, background=background, impl=impl), inputs
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("sh_degree", [None, 1])
def test_gradcheck_rasterize(sh_degree, impl):
    s = smooth_scene(sh_degree=sh_degree)
    names = ("means", "quats", "scales", "opacities", "colors")
    inputs = tuple(s[k].clone().requires_grad_() for k in names)

    def render(means, quats, scales, opacities, colors):
        rgb, alpha, depth, _ = rasterize(
            means,
            quats,
            scales,
            opacities,
            colors,
            s["viewmat"],
            s["K"],
            8,
            6,
            background=0.3,
            impl=impl,
        )
        return rgb, alpha, depth

    assert torch.autograd.gradcheck(render, inputs)


@needs_cpp
def test_gradcheck_rasterize_across_tiles():
    """Three Gaussians straddling the corners of 2x2 tiles of a 20x18 image, SH degree 3."""
    s = smooth_scene(sh_degree=3)
    s["K"] = torch.tensor(
        [[16.0, 0.0, 10.0], [0.0, 16.0, 9.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    s["scales"] = s["scales"] * 0.5
    names = ("means", "quats", "scales", "opacities", "colors")
    inputs = tuple(s[k].clone().requires_grad_() for k in names)

    def render(means, quats, scales, opacities, colors):
        rgb, alpha, depth, _ = rasterize(
            means,
            quats,
            scales,
            opacities,
            colors,
            s["viewmat"],
            s["K"],
            20,
            18,
            background=0.3,
            impl="cpp",
        )
        return rgb, alpha, depth

    assert torch.autograd.gradcheck(render, inputs, fast_mode=True)


@pytest.mark.parametrize("impl", IMPLS)
def test_means2d_gradient_for_densification(impl):
    s = smooth_scene(dtype=torch.float32)
    s["means"].requires_grad_()
    rgb, _, _, info = rasterize(
        s["means"],
        s["quats"],
        s["scales"],
        s["opacities"],
        s["colors"],
        s["viewmat"],
        s["K"],
        8,
        6,
        impl=impl,
    )
    info["means2d"].retain_grad()
    rgb.sum().backward()
    assert info["means2d"].grad.shape == (3, 2)
    assert bool((info["means2d"].grad.abs().sum(dim=1) > 0).all())


# ----------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_scene_renders_background(impl):
    viewmat, K = camera(dtype=torch.float32)
    rgb, alpha, depth, info = rasterize(
        torch.zeros(0, 3),
        torch.zeros(0, 4),
        torch.zeros(0, 3),
        torch.zeros(0),
        torch.zeros(0, 3),
        viewmat,
        K,
        5,
        4,
        background=torch.tensor([0.1, 0.2, 0.3]),
        impl=impl,
    )
    assert rgb.shape == (4, 5, 3) and alpha.shape == (4, 5) and depth.shape == (4, 5)
    torch.testing.assert_close(rgb, torch.tensor([0.1, 0.2, 0.3]).expand(4, 5, 3))
    assert bool((alpha == 0).all() and (depth == 0).all())
    assert info["means2d"].shape == (0, 2) and info["radii"].shape == (0,)


def _bad(**changes) -> dict:
    s = smooth_scene(dtype=torch.float32)
    s.update(changes)
    return s


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"means": torch.zeros(3, 2)}, r"means must have shape \[\*, 3\], got \[3, 2\]"),
        ({"quats": torch.zeros(2, 4)}, "quats must have 3 entries"),
        ({"quats": torch.zeros(3, 4)}, "quats must have non-zero norm"),
        (
            {"scales": torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])},
            "scales must be > 0",
        ),
        ({"means": torch.tensor([[0.0, 0.0, float("nan")]] * 3)}, "means must be finite"),
        ({"opacities": torch.tensor([0.5, 1.5, 0.5])}, r"opacities must be in \[0, 1\]"),
        (
            {"opacities": torch.tensor([0.5, -0.1, 0.5])},
            r"opacities must be in \[0, 1\].*got minimum -0.1",
        ),
        ({"colors": torch.zeros(3, 4)}, r"colors must have shape \[\*, 3\]"),
        ({"colors": torch.zeros(3, 5, 3)}, "K = \\(degree\\+1\\)\\^2"),
        ({"viewmat": torch.eye(3)}, r"viewmat must have shape \[4, 4\], got \[3, 3\]"),
        ({"K": torch.eye(4)}, r"K must have shape \[3, 3\], got \[4, 4\]"),
        ({"K": torch.zeros(3, 3)}, "K must have positive focal lengths"),
        ({"width": 0}, "width must be an int >= 1, got 0"),
        ({"height": 6.0}, "height must be an int >= 1, got 6.0"),
        ({"width": True}, "width must be an int >= 1, got True"),
        (
            {
                "viewmat": torch.tensor(
                    [[1.0, 0, 0, float("inf")]] + [[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
                )
            },
            "viewmat must be finite",
        ),
        ({"K": torch.tensor([[float("nan"), 0, 4], [0, 10.0, 3], [0, 0, 1]])}, "K must be finite"),
        ({"width": 100_000, "height": 100_000}, "a 100000x100000 image needs .* GiB of outputs"),
        ({"means": torch.zeros(3, 3, dtype=torch.float64)}, "must have the dtype of means"),
    ],
)
@pytest.mark.parametrize("impl", IMPLS)
def test_bad_input_names_the_argument(changes, match, impl):
    s = _bad(**changes)
    with pytest.raises(ValueError, match=match):
        rasterize(
            s["means"],
            s["quats"],
            s["scales"],
            s["opacities"],
            s["colors"],
            s["viewmat"],
            s["K"],
            s["width"],
            s["height"],
            impl=impl,
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"near": float("nan")}, "near must be finite, got nan"),
        ({"near": 0.0}, "near must be > 0, got 0.0"),
        ({"near": "0.1"}, "near must be a real number"),
        ({"background": float("inf")}, "background must be finite, got inf"),
        ({"background": [0.5, float("nan"), 0.5]}, r"background\[1\] must be finite"),
        (
            {"background": torch.tensor([0.5, float("nan"), 0.5])},
            "background must be finite, got 1 NaN",
        ),
        ({"background": torch.ones(4)}, r"background must be a scalar or \[3\]"),
        ({"sh_degree": True}, "sh_degree must be an int in 0..3, got True"),
    ],
)
@pytest.mark.parametrize("impl", IMPLS)
def test_bad_scalar_arguments_name_themselves(kwargs, match, impl):
    s = smooth_scene(sh_degree=1 if "sh_degree" in kwargs else None, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        rasterize(
            s["means"],
            s["quats"],
            s["scales"],
            s["opacities"],
            s["colors"],
            s["viewmat"],
            s["K"],
            8,
            6,
            impl=impl,
            **kwargs,
        )


def test_every_public_op_checks_its_scalars():
    s = smooth_scene(dtype=torch.float32)
    camera = (s["viewmat"], s["K"])
    with pytest.raises(ValueError, match="near must be finite"):
        project_gaussians(s["means"], s["quats"], s["scales"], *camera, 8, 6, near=float("inf"))
    with pytest.raises(ValueError, match="height must be an int >= 1, got -6"):
        project_gaussians(s["means"], s["quats"], s["scales"], *camera, 8, -6)
    splats = (
        torch.zeros(1, 2),
        torch.ones(1, 3),
        torch.ones(1, 3),
        torch.ones(1) * 0.5,
        torch.ones(1),
    )
    with pytest.raises(ValueError, match="background must be finite"):
        rasterize_splats(*splats, 4, 4, background=float("nan"))
    with pytest.raises(ValueError, match="a 4x1000000000 image needs"):
        rasterize_splats(*splats, 4, 10**9)
    with pytest.raises(ValueError, match="chunk_pixels must be an int >= 1, got 0"):
        rasterize_reference(*splats, 4, 4, chunk_pixels=0)
    with pytest.raises(ValueError, match="directions must be finite"):
        sh_colors(torch.zeros(1, 1, 3), torch.tensor([[float("nan"), 0.0, 1.0]]), 0)


def test_bad_sh_degree():
    s = smooth_scene(sh_degree=1, dtype=torch.float32)
    with pytest.raises(ValueError, match="colors must have at least .* 9 coefficients"):
        rasterize(
            s["means"],
            s["quats"],
            s["scales"],
            s["opacities"],
            s["colors"],
            s["viewmat"],
            s["K"],
            8,
            6,
            sh_degree=2,
        )
    with pytest.raises(ValueError, match="sh_degree must be an int in 0..3"):
        sh_colors(torch.zeros(1, 25, 3), torch.ones(1, 3), 4)
    with pytest.raises(ValueError, match="sh_degree needs colors as SH"):
        rasterize(
            s["means"],
            s["quats"],
            s["scales"],
            s["opacities"],
            s["colors"][:, 0],
            s["viewmat"],
            s["K"],
            8,
            6,
            sh_degree=0,
        )


def test_cuda_impl_needs_cuda_tensors():
    s = smooth_scene(dtype=torch.float32)
    with pytest.raises(ValueError, match="impl='cuda'"):
        rasterize(
            s["means"],
            s["quats"],
            s["scales"],
            s["opacities"],
            s["colors"],
            s["viewmat"],
            s["K"],
            8,
            6,
            impl="cuda",
        )
    with pytest.raises(ValueError, match="impl='cuda'"):
        sh_colors(torch.zeros(1, 1, 3), torch.ones(1, 3), 0, impl="cuda")


@needs_cpp
def test_kernels_refuse_camera_gradients_and_double_backward():
    s = smooth_scene(dtype=torch.float64)
    viewmat = s["viewmat"].clone().requires_grad_()
    with pytest.raises(ValueError, match="viewmat requires grad.*impl='torch'"):
        rasterize(
            s["means"],
            s["quats"],
            s["scales"],
            s["opacities"],
            s["colors"],
            viewmat,
            s["K"],
            8,
            6,
            impl="cpp",
        )
    # the reference differentiates the camera
    rgb, _, _, _ = rasterize(
        s["means"],
        s["quats"],
        s["scales"],
        s["opacities"],
        s["colors"],
        viewmat,
        s["K"],
        8,
        6,
        impl="torch",
    )
    rgb.sum().backward()
    assert viewmat.grad is not None and bool(viewmat.grad.abs().sum() > 0)

    means = s["means"].clone().requires_grad_()
    rgb, _, _, _ = rasterize(
        means,
        s["quats"],
        s["scales"],
        s["opacities"],
        s["colors"],
        s["viewmat"],
        s["K"],
        8,
        6,
        impl="cpp",
    )
    (grad,) = torch.autograd.grad(rgb.sum(), means, create_graph=True)
    with pytest.raises(NotImplementedError, match="no double backward"):
        grad.sum().backward()


@needs_cpp
def test_auto_runs_the_kernel_when_built():
    """impl="auto" on CPU tensors runs the C++ kernels: its outputs come from their autograd
    nodes and equal impl="cpp" exactly (not just the reference's within tolerance)."""
    s = smooth_scene(dtype=torch.float32)
    means = s["means"].clone().requires_grad_()
    args = (means, s["quats"], s["scales"], s["opacities"], s["colors"], s["viewmat"], s["K"], 8, 6)
    rgb, alpha, depth, info = rasterize(*args)
    assert type(rgb.grad_fn).__name__ == "_RasterizeKernelBackward"
    assert type(info["means2d"].grad_fn).__name__ == "_ProjectKernelBackward"
    for auto, chosen in zip((rgb, alpha, depth), rasterize(*args, impl="cpp")[:3], strict=True):
        assert torch.equal(auto, chosen)
    reference = rasterize(*args, impl="torch")[0]
    assert type(reference.grad_fn).__name__ != "_RasterizeKernelBackward"


# ----------------------------------------------------------------------------- value checks


def _rasterize_args(s: dict) -> tuple:
    return (
        s["means"],
        s["quats"],
        s["scales"],
        s["opacities"],
        s["colors"],
        s["viewmat"],
        s["K"],
        s["width"],
        s["height"],
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_value_checks_are_read_back_in_one_synchronisation(impl):
    s = smooth_scene(sh_degree=1, dtype=torch.float32)
    with HostReads() as reads:
        rasterize(*_rasterize_args(s), background=torch.tensor([0.1, 0.2, 0.3]), impl=impl)
    before_render = reads.calls.get("tolist", 0)
    assert before_render >= 1
    if impl != "torch":  # the reference itself reads (nonzero, chunk loop); the kernels do not
        assert reads.count == 1, reads.calls
    with HostReads() as reads:
        rasterize(*_rasterize_args(s), impl=impl, validate=False)
    assert reads.calls.get("tolist", 0) == before_render - 1
    if impl != "torch":
        assert reads.count == 0, reads.calls


@pytest.mark.parametrize("impl", IMPLS)
def test_validate_false_and_set_checks_skip_only_the_value_checks(impl):
    s = smooth_scene(dtype=torch.float32)
    s["opacities"] = torch.tensor([0.5, 1.5, 0.5])  # out of range: only a value check sees it
    with pytest.raises(ValueError, match="opacities must be in"):
        rasterize(*_rasterize_args(s), impl=impl)
    rasterize(*_rasterize_args(s), impl=impl, validate=False)
    with checks(False):
        assert not checks_enabled()
        rasterize(*_rasterize_args(s), impl=impl)
        with pytest.raises(ValueError, match="opacities must be in"):
            rasterize(*_rasterize_args(s), impl=impl, validate=True)
        with pytest.raises(ValueError, match="quats must have 3 entries"):  # shapes: always
            rasterize(s["means"], s["quats"][:2], *_rasterize_args(s)[2:], impl=impl)
        with pytest.raises(ValueError, match="near must be finite"):  # scalars: always
            rasterize(*_rasterize_args(s), near=float("nan"), impl=impl)
    assert checks_enabled()


def test_every_public_op_takes_validate_and_a_typed_impl():
    import inspect

    for op in (project_gaussians, sh_colors, rasterize_splats, rasterize, rasterize_reference):
        parameters = inspect.signature(op).parameters
        assert parameters["validate"].default is None, op.__name__
        if "impl" in parameters:
            assert parameters["impl"].annotation == "Impl", op.__name__


# ----------------------------------------------------------------------------- double backward


@needs_cpp
@pytest.mark.parametrize("stage", ["project", "sh", "rasterize_splats"])
def test_every_kernel_refuses_double_backward(stage):
    s = smooth_scene(sh_degree=1, dtype=torch.float64)
    if stage == "project":
        leaf = s["means"].clone().requires_grad_()
        out = project_gaussians(
            leaf, s["quats"], s["scales"], s["viewmat"], s["K"], 8, 6, impl="cpp"
        )[0]
    elif stage == "sh":
        leaf = s["colors"].clone().requires_grad_()
        out = sh_colors(leaf, s["means"], 1, impl="cpp")
    else:
        leaf = torch.tensor([[3.0, 2.5], [4.5, 3.0]], dtype=torch.float64, requires_grad=True)
        conics = torch.tensor([[0.3, 0.0, 0.3]] * 2, dtype=torch.float64)
        out = rasterize_splats(
            leaf,
            conics,
            torch.rand(2, 3, dtype=torch.float64),
            torch.tensor([0.5, 0.6], dtype=torch.float64),
            torch.tensor([1.0, 2.0], dtype=torch.float64),
            8,
            6,
            impl="cpp",
        )[0]
    (grad,) = torch.autograd.grad((out * out).sum(), leaf, create_graph=True)
    with pytest.raises(NotImplementedError, match="mp3d.ops.gaussians: .*no double backward"):
        grad.sum().backward()


def test_reference_has_second_derivatives():
    s = smooth_scene(n=2, dtype=torch.float64)
    means = s["means"].clone().requires_grad_()

    def fn(m):
        return rasterize(m, *_rasterize_args(s)[1:], impl="torch")[0]

    assert torch.autograd.gradgradcheck(fn, (means,))


def test_rasterize_reference_checks_shapes():
    with pytest.raises(ValueError, match="conics must have 2 entries"):
        rasterize_reference(
            torch.zeros(2, 2),
            torch.zeros(3, 3),
            torch.zeros(2, 3),
            torch.zeros(2),
            torch.zeros(2),
            4,
            4,
        )


# ----------------------------------------------------------------------------- C++ parity


def _random_scene(n, width, height, dtype, sh_degree=None, seed=0) -> dict:
    """n Gaussians around the view axis of a width x height camera: some behind it, some
    off-image, some large and opaque (alpha capped at 0.99, compositing stopped early)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.8, 1.5], dtype=dtype)
    # Not too close to the camera: float32 gradients of a splat 1000s of pixels wide are
    # dominated by rounding, in the reference as much as in the kernel.
    means[:, 2] = means[:, 2].abs() + 1.5
    means[: n // 20, 2] = -1.0  # behind the camera
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.25 + 0.01
    scales[: n // 10] *= 4.0
    opacities = torch.rand(n, generator=g, dtype=dtype) * 0.98 + 0.01
    opacities[n // 10 : n // 5] = 1.0
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g, dtype=dtype)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.3
    focal = 0.9 * width
    K = torch.tensor(
        [[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=dtype
    )
    angle = 0.3
    viewmat = torch.eye(4, dtype=dtype)
    viewmat[:3, :3] = torch.tensor(
        [
            [math.cos(angle), 0.0, math.sin(angle)],
            [0.0, 1.0, 0.0],
            [-math.sin(angle), 0.0, math.cos(angle)],
        ],
        dtype=dtype,
    )
    viewmat[:3, 3] = torch.tensor([0.3, -0.2, 0.5], dtype=dtype)
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g, dtype=dtype),
        "scales": scales,
        "opacities": opacities,
        "colors": colors,
        "viewmat": viewmat,
        "K": K,
        "width": width,
        "height": height,
    }


def _render_and_grads(s: dict, impl: str) -> dict:
    """Outputs and the gradients of a random linear loss of them, for `impl`."""
    names = ("means", "quats", "scales", "opacities", "colors")
    inputs = {k: s[k].clone().requires_grad_() for k in names}
    rgb, alpha, depth, info = rasterize(
        **inputs,
        viewmat=s["viewmat"],
        K=s["K"],
        width=s["width"],
        height=s["height"],
        background=torch.tensor([0.2, 0.4, 0.6]).to(rgb_dtype(s)),
        impl=impl,
    )
    info["means2d"].retain_grad()
    g = torch.Generator().manual_seed(7)
    loss = sum(
        (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
        for out in (rgb, alpha, depth)
    )
    loss.backward()
    out = {
        "rgb": rgb,
        "alpha": alpha,
        "depth": depth,
        "radii": info["radii"],
        "conics": info["conics"],
        "grad_means2d": info["means2d"].grad,
    }
    out.update({f"grad_{k}": v.grad for k, v in inputs.items()})
    return out


def rgb_dtype(s: dict) -> torch.dtype:
    return s["means"].dtype


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sh_degree", [None, 3])
def test_cpp_matches_reference_forward_and_gradients(dtype, sh_degree):
    s = _random_scene(300, 45, 38, dtype, sh_degree)  # 45x38: partial tiles at the edges
    expected, actual = _render_and_grads(s, "torch"), _render_and_grads(s, "cpp")
    assert float(expected["alpha"].detach().max()) > 0.99  # opaque: compositing stops early
    assert bool((expected["radii"] == 0).any())
    tolerance = {} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
    for name, value in expected.items():
        scale = max(1.0, float(value.detach().abs().max()))
        torch.testing.assert_close(actual[name] / scale, value / scale, msg=name, **tolerance)


@needs_cpp
def test_cpp_results_do_not_depend_on_the_thread_count():
    # Threads take tiles busiest first from a shared counter: any thread may draw any tile,
    # and each tile's pixels and gradient rows must still come out bit for bit the same.
    s = _random_scene(600, 70, 54, torch.float32, seed=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = _render_and_grads(s, "cpp")
        torch.set_num_threads(3)
        parallel = _render_and_grads(s, "cpp")
    finally:
        torch.set_num_threads(threads)
    assert float(serial["alpha"].detach().max()) > 0.5
    for name, value in serial.items():
        assert torch.equal(parallel[name], value), name


@needs_cpp
def test_tile_lists_hold_each_gaussian_front_to_back():
    s = _random_scene(200, 50, 40, torch.float64)
    means2d, conics, depths, radii, _ = project_gaussians(
        s["means"], s["quats"], s["scales"], s["viewmat"], s["K"], 50, 40, impl="cpp"
    )
    offsets, ids = torch.ops.mp3d.gaussians_tile_bin(
        means2d, conics, s["opacities"], depths, radii, 50, 40, TILE_SIZE
    )
    tiles_x, tiles_y = math.ceil(50 / TILE_SIZE), math.ceil(40 / TILE_SIZE)
    assert offsets.shape == (tiles_x * tiles_y + 1,) and int(offsets[-1]) == ids.numel()
    for tile in range(tiles_x * tiles_y):
        listed = ids[offsets[tile] : offsets[tile + 1]]
        assert bool((radii[listed] > 0).all())
        assert bool((depths[listed][1:] >= depths[listed][:-1]).all())
        assert len(set(listed.tolist())) == len(listed)
    assert set(ids.tolist()) <= set(torch.nonzero(radii > 0).flatten().tolist())


@needs_cpp
def test_cpp_large_scene_matches_reference():
    s = _random_scene(3000, 96, 80, torch.float32, seed=3)
    args = (
        s["means"],
        s["quats"],
        s["scales"],
        s["opacities"],
        s["colors"],
        s["viewmat"],
        s["K"],
        96,
        80,
    )
    for expected, actual in zip(
        rasterize(*args, impl="torch")[:3], rasterize(*args, impl="cpp")[:3]
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@needs_cpp
def test_rasterize_splats_checks_its_inputs():
    with pytest.raises(ValueError, match="means2d must be finite"):
        rasterize_splats(
            torch.full((1, 2), float("inf")),
            torch.ones(1, 3),
            torch.ones(1, 3),
            torch.ones(1),
            torch.ones(1),
            4,
            4,
            impl="cpp",
        )
    with pytest.raises(ValueError, match=r"opacities must have 1 entries .*means2d"):
        rasterize_splats(
            torch.zeros(1, 2),
            torch.ones(1, 3),
            torch.ones(1, 3),
            torch.ones(2),
            torch.ones(1),
            4,
            4,
            impl="cpp",
        )
