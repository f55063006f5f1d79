"""Hash encoding: C++/CUDA parity with the torch reference (values and exact table rows),
float64 gradcheck and gradgradcheck, second derivatives (an eikonal loss) equal to the
reference's, empty input and bad input."""

from __future__ import annotations

import pytest
import torch

from mp3d._backend import available_impls
from mp3d.ops._validation import HostReads, checks
from mp3d.ops.hash_encoding import hash_encode, level_indices

KERNEL_IMPLS = [i for i in ("cpp",) if i in available_impls("hash_encoding")]
needs_cpp = pytest.mark.skipif("cpp" not in available_impls(), reason="mp3d._C not available")

# (resolutions, rows per level): dense levels have (res+1)^3 <= rows, the others are hashed.
LAYOUTS = {
    "dense": ([1, 2, 4], [8, 27, 125]),
    "hashed": ([4, 9, 16], [16, 61, 64]),
    # side^3 == rows (dense, 27 and 64), side^3 == rows + 1 (hashed, 63), then hashed levels.
    "mixed": ([2, 3, 3, 5, 8, 13, 21], [27, 64, 63, 100, 100, 128, 97]),
}
# Small layouts for gradcheck, which perturbs every table entry.
SMALL_LAYOUTS = {"dense": ([1, 2], [8, 27]), "mixed": ([2, 3, 5], [27, 20, 30])}


def make_layout(resolutions: list[int], sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """resolutions [L] and offsets [L+1] (int64, CPU) for levels of the given row counts."""
    offsets = torch.tensor([0] + sizes).cumsum(0)
    return torch.tensor(resolutions), offsets


def make_embeddings(
    offsets: torch.Tensor, n_features: int, dtype=torch.float32, seed: int = 0
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(int(offsets[-1]), n_features, generator=g, dtype=torch.float64).to(dtype)


def parity_points(
    resolutions: list[int], n_random: int = 200, dtype=torch.float32, seed: int = 0
) -> torch.Tensor:
    """Random points (some outside the unit cube), the cube's corners, and points whose
    coordinates sit on cell boundaries of every level."""
    g = torch.Generator().manual_seed(seed)
    random = torch.rand(n_random, 3, generator=g, dtype=torch.float64) * 1.4 - 0.2
    cube_corners = torch.tensor(
        [[(c >> a) & 1 for a in range(3)] for c in range(8)], dtype=torch.float64
    )
    on_grid = []
    for res in resolutions:
        ticks = torch.arange(res + 1, dtype=torch.float64) / res
        on_grid.append(ticks[torch.randint(0, res + 1, (40, 3), generator=g)])
    return torch.cat([random, cube_corners, *on_grid]).to(dtype)


def interior_points(
    resolutions: list[int], n: int, margin: float = 1e-3, seed: int = 0
) -> torch.Tensor:
    """float64 points at least `margin` from every cell boundary of every level and from the
    clamp at 0 and 1, where the encoding is smooth; a few lie outside the cube."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(4 * n, 3, generator=g, dtype=torch.float64) * 1.2 - 0.1
    near_clamp = ((points.abs() < margin) | ((points - 1).abs() < margin)).any(dim=1)
    near_boundary = torch.zeros(4 * n, dtype=torch.bool)
    for res in resolutions:
        frac = torch.frac(points * res)
        inside = (points > 0) & (points < 1)
        near_boundary |= (inside & ((frac < margin) | (frac > 1 - margin))).any(dim=1)
    points = points[~near_clamp & ~near_boundary][:n]
    assert points.shape[0] == n
    return points


# ----------------------------------------------------------------------------- parity


@needs_cpp
@pytest.mark.parametrize("n_features", [1, 2, 3])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cpp_forward_matches_reference(layout, n_features):
    resolutions, offsets = make_layout(*LAYOUTS[layout])
    embeddings = make_embeddings(offsets, n_features)
    points = parity_points(LAYOUTS[layout][0])
    expected = hash_encode(points, embeddings, resolutions, offsets, impl="torch")
    actual = hash_encode(points, embeddings, resolutions, offsets, impl="cpp")
    assert actual.shape == (points.shape[0], len(resolutions) * n_features)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_vertices_pick_the_reference_rows(impl):
    """At grid vertices the feature is the row itself: with embeddings = row numbers, the
    kernel must pick exactly the rows of level_indices, including hashes beyond 32 bits."""
    resolutions_list, sizes = [16, 64, 512, 2048], [17**3, 2**12 + 3, 2**16 + 1, 2**19]
    resolutions, offsets = make_layout(resolutions_list, sizes)
    embeddings = torch.arange(int(offsets[-1]), dtype=torch.float64)[:, None]
    g = torch.Generator().manual_seed(1)
    for level, (res, size) in enumerate(zip(resolutions_list, sizes)):
        vertices = torch.randint(0, res + 1, (500, 3), generator=g)
        vertices[:3] = torch.tensor([[0, 0, 0], [res, res, res], [1, res - 1, 5]])
        points = vertices.double() / res  # exact: resolutions are powers of 2
        features = hash_encode(points, embeddings, resolutions, offsets, impl=impl)
        expected = offsets[level] + level_indices(vertices, res, size)
        assert torch.equal(features[:, level], expected.double()), f"level {level}"


@needs_cpp
def test_many_levels_match_reference():
    resolutions, offsets = make_layout(list(range(1, 41)), [50] * 40)
    embeddings = make_embeddings(offsets, 2)
    points = parity_points([1, 7, 40], n_random=50)
    torch.testing.assert_close(
        hash_encode(points, embeddings, resolutions, offsets, impl="cpp"),
        hash_encode(points, embeddings, resolutions, offsets, impl="torch"),
        rtol=1e-5,
        atol=1e-5,
    )


def _grads(
    impl: str, points, embeddings, resolutions, offsets, grad_features, wrt=("points", "embeddings")
):
    inputs = {
        "points": points.clone().requires_grad_("points" in wrt),
        "embeddings": embeddings.clone().requires_grad_("embeddings" in wrt),
    }
    features = hash_encode(inputs["points"], inputs["embeddings"], resolutions, offsets, impl=impl)
    (features * grad_features).sum().backward()
    return {name: inputs[name].grad for name in wrt}


@needs_cpp
@pytest.mark.parametrize("wrt", [("points", "embeddings"), ("embeddings",), ("points",)])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cpp_backward_matches_reference(layout, wrt):
    resolutions, offsets = make_layout(*LAYOUTS[layout])
    embeddings = make_embeddings(offsets, 2, seed=2)
    points = parity_points(LAYOUTS[layout][0], n_random=300, seed=3)
    grad_features = torch.randn(
        points.shape[0], 2 * len(resolutions), generator=torch.Generator().manual_seed(4)
    )
    expected = _grads("torch", points, embeddings, resolutions, offsets, grad_features, wrt)
    actual = _grads("cpp", points, embeddings, resolutions, offsets, grad_features, wrt)
    for name in wrt:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-4, msg=name)


@needs_cpp
def test_noncontiguous_inputs():
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 4)[:, ::2]
    points = parity_points(LAYOUTS["mixed"][0]).t().contiguous().t()
    assert not embeddings.is_contiguous() and not points.is_contiguous()
    torch.testing.assert_close(
        hash_encode(points, embeddings, resolutions, offsets, impl="cpp"),
        hash_encode(points, embeddings, resolutions, offsets, impl="torch"),
    )


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("layout", list(SMALL_LAYOUTS))
def test_gradcheck_embeddings(impl, layout):
    resolutions, offsets = make_layout(*SMALL_LAYOUTS[layout])
    embeddings = make_embeddings(offsets, 2, dtype=torch.float64).requires_grad_()
    points = parity_points(SMALL_LAYOUTS[layout][0], n_random=6, dtype=torch.float64)[::8]

    def fn(emb):
        return hash_encode(points, emb, resolutions, offsets, impl=impl)

    assert torch.autograd.gradcheck(fn, (embeddings,))


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("layout", list(SMALL_LAYOUTS))
def test_gradcheck_points_and_embeddings(impl, layout):
    resolutions, offsets = make_layout(*SMALL_LAYOUTS[layout])
    embeddings = make_embeddings(offsets, 3, dtype=torch.float64).requires_grad_()
    points = interior_points(SMALL_LAYOUTS[layout][0], 12).requires_grad_()

    def fn(p, emb):
        return hash_encode(p, emb, resolutions, offsets, impl=impl)

    assert torch.autograd.gradcheck(fn, (points, embeddings))


# ----------------------------------------------------------------------------- double backward

WRT = [("points", "embeddings"), ("embeddings",), ("points",)]


def _gradgradcheck(impl, layout, wrt, device="cpu"):
    """gradgradcheck of hash_encode w.r.t. `wrt` in float64 at points away from cell
    boundaries (two outside the cube: the clamp branch), the incoming gradient included."""
    resolutions, offsets = make_layout(*SMALL_LAYOUTS[layout])
    points = interior_points(SMALL_LAYOUTS[layout][0], 8)
    points = torch.cat([points, torch.tensor([[1.2, 0.37, 0.61], [-0.1, 1.1, -0.3]]).double()])
    inputs = {
        "points": points.to(device).requires_grad_("points" in wrt),
        "embeddings": make_embeddings(offsets, 2, dtype=torch.float64)
        .to(device)
        .requires_grad_("embeddings" in wrt),
    }

    def fn(*args):
        values = dict(inputs, **dict(zip(wrt, args)))
        return hash_encode(values["points"], values["embeddings"], resolutions, offsets, impl=impl)

    return torch.autograd.gradgradcheck(fn, tuple(inputs[name] for name in wrt))


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("wrt", WRT)
@pytest.mark.parametrize("layout", list(SMALL_LAYOUTS))
def test_gradgradcheck(impl, layout, wrt):
    assert _gradgradcheck(impl, layout, wrt)


def _eikonal_grads(impl, points, embeddings, readout, resolutions, offsets):
    """Gradients of sum((||df/dp|| - 1)^2), f = features @ readout, w.r.t. the points, the
    embeddings and the readout: second derivatives of the encoding."""
    p, e, w = (t.clone().requires_grad_() for t in (points, embeddings, readout))
    values = hash_encode(p, e, resolutions, offsets, impl=impl) @ w
    (grad_points,) = torch.autograd.grad(values.sum(), p, create_graph=True)
    ((grad_points.norm(dim=-1) - 1) ** 2).sum().backward()
    return {"points": p.grad, "embeddings": e.grad, "readout": w.grad}


@needs_cpp
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cpp_eikonal_second_derivatives_match_reference(layout):
    resolutions, offsets = make_layout(*LAYOUTS[layout])
    embeddings = make_embeddings(offsets, 3, dtype=torch.float64, seed=9) * 0.1
    points = interior_points(LAYOUTS[layout][0], 200, seed=10)
    assert ((points < 0) | (points > 1)).any()  # some clamped coordinates
    readout = torch.randn(3 * len(resolutions), generator=torch.Generator().manual_seed(11))
    readout = readout.double()
    args = (points, embeddings, readout, resolutions, offsets)
    expected, actual = _eikonal_grads("torch", *args), _eikonal_grads("cpp", *args)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-10, atol=1e-10, msg=name)


@needs_cpp
def test_cpp_second_derivatives_vanish_where_the_clamp_cuts():
    """Outside the cube the points gradient is zero along the clamped axes, and so are its
    derivatives (w.r.t. embeddings, points and the incoming gradient)."""
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2, dtype=torch.float64).requires_grad_()
    points = torch.tensor(
        [[1.3, -0.2, 1.5], [-0.4, 0.37, 0.61], [0.42, 0.55, 1.2]], dtype=torch.float64
    ).requires_grad_()
    grad_features = torch.randn(3, 2 * len(resolutions), dtype=torch.float64, requires_grad=True)
    features = hash_encode(points, embeddings, resolutions, offsets, impl="cpp")
    (grad_points,) = torch.autograd.grad(features, points, grad_features, create_graph=True)
    clamped = (points < 0) | (points > 1)
    assert torch.all(grad_points[clamped] == 0) and torch.all(grad_points[~clamped] != 0)
    d_points, d_embeddings, d_grad_features = torch.autograd.grad(
        grad_points[clamped].sum(), (points, embeddings, grad_features)
    )
    assert d_points.abs().max() == 0 and d_embeddings.abs().max() == 0
    assert d_grad_features.abs().max() == 0


@needs_cpp
def test_kernel_double_backward_trains_the_embeddings_float32():
    """An eikonal term on the points gradient reaches the embeddings through the kernel, in
    float32 as training runs it, as the reference's does."""
    resolutions, offsets = make_layout(*LAYOUTS["dense"])
    embeddings = make_embeddings(offsets, 2, seed=12)
    points = interior_points(LAYOUTS["dense"][0], 50, seed=13).float()
    readout = torch.ones(2 * len(resolutions))
    args = (points, embeddings, readout, resolutions, offsets)
    expected, actual = _eikonal_grads("torch", *args), _eikonal_grads("cpp", *args)
    assert actual["embeddings"].abs().max() > 0
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-4, msg=name)


@needs_cpp
def test_kernel_third_derivative_raises():
    """Second derivatives run on the kernels; differentiating them again raises, naming the
    way out, instead of treating the second derivatives as constants."""
    resolutions, offsets = make_layout(*LAYOUTS["dense"])
    embeddings = make_embeddings(offsets, 2).requires_grad_()
    points = interior_points(LAYOUTS["dense"][0], 5).float().requires_grad_()
    features = hash_encode(points, embeddings, resolutions, offsets, impl="cpp")
    (grad_points,) = torch.autograd.grad(features.sum(), points, create_graph=True)
    (second,) = torch.autograd.grad(grad_points.norm(), embeddings, create_graph=True)
    with pytest.raises(NotImplementedError, match="first and second derivatives.*impl='torch'"):
        second.sum().backward()


@needs_cpp
def test_cpp_double_backward_op_computes_only_what_is_asked():
    """The raw op: outputs not asked for have no rows; absent incoming gradients give zeros;
    bad incoming gradients are refused in C++ (ValueError)."""
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2)
    points = torch.rand(6, 3)
    grad_features = torch.randn(6, 2 * len(resolutions))
    op = torch.ops.mp3d.hash_encode_bwd_bwd
    layout = (resolutions, offsets)
    d_g, d_p, d_e = op(grad_features, points, embeddings, *layout, None, None, True, True, True)
    assert d_g.shape == grad_features.shape and d_p.shape == (6, 3)
    assert d_e.shape == embeddings.shape
    assert d_g.abs().max() == 0 and d_p.abs().max() == 0 and d_e.abs().max() == 0
    gg_points = torch.randn(6, 3)
    d_g, d_p, d_e = op(
        grad_features, points, embeddings, *layout, None, gg_points, False, True, False
    )
    assert d_g.shape == (0, grad_features.shape[1]) and d_e.shape == (0, 2)
    assert d_p.abs().max() > 0
    with pytest.raises(ValueError, match=r"gg_points must have shape \[6, 3\]"):
        op(grad_features, points, embeddings, *layout, None, gg_points[:5], True, True, True)
    with pytest.raises(ValueError, match="gg_embeddings must have dtype"):
        op(grad_features, points, embeddings, *layout, embeddings.double(), None, True, True, True)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_no_points_double_backward(impl):
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2).requires_grad_()
    points = torch.zeros(0, 3, requires_grad=True)
    features = hash_encode(points, embeddings, resolutions, offsets, impl=impl)
    (grad_points,) = torch.autograd.grad(features.sum(), points, create_graph=True)
    assert grad_points.shape == (0, 3)
    (grad_points.sum() + features.sum()).backward()
    assert embeddings.grad.shape == embeddings.shape and embeddings.grad.abs().sum() == 0


# ----------------------------------------------------------------------------- empty input


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_no_points(impl):
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2).requires_grad_()
    points = torch.zeros(0, 3, requires_grad=True)
    features = hash_encode(points, embeddings, resolutions, offsets, impl=impl)
    assert features.shape == (0, 2 * len(resolutions))
    features.sum().backward()
    assert points.grad.shape == (0, 3)
    assert embeddings.grad.shape == embeddings.shape and embeddings.grad.abs().sum() == 0


# ----------------------------------------------------------------------------- bad input


def _bad_cases():
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    base = {
        "points": torch.rand(10, 3),
        "embeddings": make_embeddings(offsets, 2),
        "resolutions": resolutions,
        "offsets": offsets,
    }

    def case(**changes):
        return {**base, **changes}

    nan_points = base["points"].clone()
    nan_points[3, 1] = float("nan")
    inf_points = base["points"].clone()
    inf_points[0, 0] = float("inf")
    zero_resolution = resolutions.clone()
    zero_resolution[2] = 0
    short_offsets = offsets.clone()
    short_offsets[-1] -= 1
    shifted_offsets = offsets + 1
    decreasing = offsets.clone()
    decreasing[2] = decreasing[1]
    return {
        "2-D points": (case(points=torch.rand(10, 2)), "points must have shape"),
        "1-D points": (case(points=torch.rand(30)), "points must have shape"),
        "1-D embeddings": (case(embeddings=base["embeddings"][:, 0]), "embeddings must have shape"),
        "2-D resolutions": (case(resolutions=resolutions[:, None]), "resolutions must have shape"),
        "short offsets": (case(offsets=offsets[:-1]), "offsets must have shape"),
        "int points": (case(points=torch.ones(10, 3, dtype=torch.int64)), "points must have dtype"),
        "float16 points": (case(points=base["points"].half()), "points must have dtype"),
        "mixed dtypes": (
            case(embeddings=base["embeddings"].double()),
            "embeddings must have the dtype of points",
        ),
        "int32 resolutions": (
            case(resolutions=resolutions.int()),
            "resolutions must have dtype torch.int64",
        ),
        "float offsets": (case(offsets=offsets.float()), "offsets must have dtype torch.int64"),
        "offsets not ending at rows": (case(offsets=short_offsets), "offsets must .*end at"),
        "offsets not starting at 0": (case(offsets=shifted_offsets), "offsets must start at 0"),
        "empty level": (case(offsets=decreasing), "offsets must .*increase"),
        "zero resolution": (case(resolutions=zero_resolution), "resolutions must be in 1..1048576"),
        "no levels": (
            case(resolutions=resolutions[:0], offsets=offsets[:1]),
            "resolutions must be in 1..1048576 with at least one level",
        ),
        "NaN points": (case(points=nan_points), "points must be finite"),
        "infinite points": (case(points=inf_points), "points must be finite"),
        "list points": (case(points=base["points"].tolist()), "points must be a torch.Tensor"),
        "other device": (
            case(embeddings=base["embeddings"].to("meta")),
            "embeddings must be on the same device",
        ),
        "layout off the CPU": (case(offsets=offsets.to("meta")), "must be CPU tensors"),
    }


BAD_CASES = _bad_cases()


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_raises_value_error(name, impl):
    s, message = BAD_CASES[name]
    with pytest.raises(ValueError, match=message):
        hash_encode(s["points"], s["embeddings"], s["resolutions"], s["offsets"], impl=impl)


def test_bad_impl_raises():
    resolutions, offsets = make_layout(*LAYOUTS["dense"])
    args = (torch.rand(4, 3), make_embeddings(offsets, 2), resolutions, offsets)
    with pytest.raises(ValueError, match="impl must be one of"):
        hash_encode(*args, impl="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="impl='cuda' is not available"):
            hash_encode(*args, impl="cuda")


@needs_cpp
def test_cpp_check_is_second_line_of_defence():
    """The C++ ops reject a bad layout or gradient shape themselves (ValueError)."""
    resolutions, offsets = make_layout(*LAYOUTS["dense"])
    points, embeddings = torch.rand(4, 3), make_embeddings(offsets, 2)
    with pytest.raises(ValueError, match="offsets must run from 0 to"):
        torch.ops.mp3d.hash_encode_fwd(points, embeddings[:-1], resolutions, offsets)
    with pytest.raises(ValueError, match="grad_features must have shape"):
        torch.ops.mp3d.hash_encode_bwd(
            torch.zeros(4, 5), points, embeddings, resolutions, offsets, True
        )


@needs_cpp
def test_nan_point_never_leaves_the_table():
    """Called without the wrapper, a NaN point is read as 0 rather than indexing out of range."""
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2)
    points = torch.tensor([[float("nan"), 0.5, float("nan")], [0.0, 0.5, 0.0]])
    features = torch.ops.mp3d.hash_encode_fwd(points, embeddings, resolutions, offsets)
    torch.testing.assert_close(features[0], features[1])


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cuda_forward_and_backward_match_reference(layout):
    resolutions, offsets = make_layout(*LAYOUTS[layout])
    embeddings = make_embeddings(offsets, 2, seed=5)
    points = parity_points(LAYOUTS[layout][0], n_random=2000, seed=6)
    grad_features = torch.randn(
        points.shape[0], 2 * len(resolutions), generator=torch.Generator().manual_seed(7)
    )
    results = {}
    for impl, device in (("torch", "cpu"), ("cuda", "cuda")):
        p = points.to(device).requires_grad_()
        e = embeddings.to(device).requires_grad_()
        features = hash_encode(p, e, resolutions, offsets, impl=impl)
        (features * grad_features.to(device)).sum().backward()
        results[impl] = [t.detach().cpu() for t in (features, p.grad, e.grad)]
    for name, expected, actual in zip(
        ("features", "points", "embeddings"), results["torch"], results["cuda"]
    ):
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.gpu
def test_cuda_vertices_and_many_levels():
    """Exact rows at vertices, and more levels than one launch carries."""
    resolutions, offsets = make_layout([2048] * 3 + list(range(1, 38)), [2**19] * 3 + [50] * 37)
    embeddings = torch.arange(int(offsets[-1]), dtype=torch.float64)[:, None]
    vertices = torch.randint(0, 2049, (1000, 3), generator=torch.Generator().manual_seed(8))
    points = vertices.double() / 2048  # vertices of the three finest levels, exactly
    expected = hash_encode(points, embeddings, resolutions, offsets, impl="torch")
    actual = hash_encode(points.cuda(), embeddings.cuda(), resolutions, offsets, impl="cuda")
    assert torch.equal(actual[:, :3].cpu(), expected[:, :3])
    torch.testing.assert_close(actual.cpu(), expected)


@pytest.mark.gpu
def test_cuda_gradcheck():
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2, dtype=torch.float64).cuda().requires_grad_()
    points = interior_points(LAYOUTS["mixed"][0], 10).cuda().requires_grad_()

    def fn(p, emb):
        return hash_encode(p, emb, resolutions, offsets, impl="cuda")

    assert torch.autograd.gradcheck(fn, (points, embeddings))


@pytest.mark.gpu
@pytest.mark.parametrize("wrt", WRT)
@pytest.mark.parametrize("layout", list(SMALL_LAYOUTS))
def test_cuda_gradgradcheck(layout, wrt):
    assert _gradgradcheck("cuda", layout, wrt, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cuda_eikonal_second_derivatives_match_reference(layout):
    resolutions, offsets = make_layout(*LAYOUTS[layout])
    embeddings = make_embeddings(offsets, 3, dtype=torch.float64, seed=9) * 0.1
    points = interior_points(LAYOUTS[layout][0], 2000, seed=10)
    readout = torch.randn(3 * len(resolutions), generator=torch.Generator().manual_seed(11))
    args = (points, embeddings, readout.double())
    expected = _eikonal_grads("torch", *args, resolutions, offsets)
    actual = _eikonal_grads("cuda", *(t.cuda() for t in args), resolutions, offsets)
    for name in expected:
        torch.testing.assert_close(
            actual[name].cpu(), expected[name], rtol=1e-10, atol=1e-10, msg=name
        )


@pytest.mark.gpu
def test_cuda_empty_input():
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2).cuda().requires_grad_()
    points = torch.zeros(0, 3, device="cuda", requires_grad=True)
    features = hash_encode(points, embeddings, resolutions, offsets, impl="cuda")
    assert features.shape == (0, 2 * len(resolutions))
    features.sum().backward()
    assert embeddings.grad.abs().sum() == 0


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_value_check_is_one_read_and_can_be_skipped(impl):
    resolutions, offsets = make_layout(*LAYOUTS["mixed"])
    embeddings = make_embeddings(offsets, 2)
    points = torch.rand(20, 3)
    points[3, 1] = float("nan")
    with pytest.raises(ValueError, match="points must be finite, got 1 NaN"):
        hash_encode(points, embeddings, resolutions, offsets, impl=impl)
    points[3, 1] = 0.5
    with HostReads() as reads:
        hash_encode(points, embeddings, resolutions, offsets, impl=impl, validate=True)
    checked = dict(reads.calls)
    with HostReads() as reads:
        hash_encode(points, embeddings, resolutions, offsets, impl=impl, validate=False)
    # the layout (CPU tensors) is always read, once each; the points' check is one more read
    assert reads.calls.get("tolist", 0) == checked.get("tolist", 0) - 1
    if impl != "torch":
        assert checked == {"tolist": 3}
    points[0, 0] = float("inf")
    with checks(False):
        hash_encode(points, embeddings, resolutions, offsets, impl=impl)


def test_outputs_too_large_for_memory_are_refused_up_front():
    resolutions, offsets = make_layout([4], [125])
    embeddings = torch.zeros(1, 1).expand(125, 2**20)  # views: no memory of their own
    points = torch.zeros(1, 3).expand(2**20, 3)  # 2^20 points x 2^20 features: 4 TiB
    with pytest.raises(
        ValueError,
        match="encoding 1048576 points into 1 levels of 1048576 features needs 4096.0 GiB",
    ):
        hash_encode(points, embeddings, resolutions, offsets)


def test_resolution_too_fine_for_the_kernels_is_refused():
    resolutions, offsets = make_layout([2**21], [64])
    with pytest.raises(ValueError, match="resolutions must be in 1..1048576"):
        hash_encode(torch.rand(4, 3), torch.zeros(64, 2), resolutions, offsets)


def test_reference_second_derivatives():
    resolutions, offsets = make_layout(*SMALL_LAYOUTS["dense"])
    embeddings = make_embeddings(offsets, 2, dtype=torch.float64).requires_grad_()
    points = interior_points(SMALL_LAYOUTS["dense"][0], 3).requires_grad_()

    def fn(p, emb):
        return hash_encode(p, emb, resolutions, offsets, impl="torch")

    assert torch.autograd.gradgradcheck(fn, (points, embeddings))
