"""Generates mp3d's built-in body, mp3d/body/data/builtin_body.npz, in the SMPL file format.

A procedural adult in a T-pose (metres, y up, facing +z, its left on +x) on SMPL's 24-joint
skeleton. Deterministic: the same code and libraries give the same arrays.

- Surface: the zero level set of a smooth union of capsule and ellipsoid distance functions
  placed around the skeleton, meshed by marching cubes (scikit-image), then relaxed: a few
  rounds of moving each vertex towards its neighbours' mean and projecting it back onto the
  surface, which evens out the marching-cubes triangles without changing the shape.
- Skinning weights: every vertex goes to its nearest bone segment (distance over the
  segment's radius, so thick and thin parts compete fairly), those labels diffuse over the
  mesh, and small weights are cut (subtract a threshold, clamp at 0, renormalise: continuous).
- J_regressor: per joint, the non-negative, sum-to-one combination of the vertices around it
  that reproduces the rest joint (least squares with a small ridge, which spreads it out).
- shapedirs: 13 directions built from skeletal and radial changes (stature, mass, leg and arm
  length, shoulder and hip width, torso length, belly, chest, neck length, head size, limb
  girth, hand and foot size), each blended over bone segments by the diffused weights.
- posedirs: for each non-root joint k, a swelling along the normals near the joint that grows
  with the bend 1 - u^T R_k u = -u^T (R_k - I) u (u: the joint's bone direction at rest), so
  twisting a bone about itself leaves it alone; supported where joint k has skinning weight.

Usage: python scripts/make_builtin_body.py [--out PATH] [--voxel METRES]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.sparse
from scipy.optimize import nnls

from mp3d.body.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS, kintree_table

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "mp3d" / "body" / "data" / "builtin_body.npz"
VOXEL = 0.016  # marching-cubes grid step in metres (about 7000 vertices)

RELAX_ROUNDS = 8
DIFFUSE_ROUNDS = 24
WEIGHT_CUT = 0.02
REGRESSOR_RIDGE = 0.05
FALLOFF_CUT = 0.02


def _mirror(left: tuple[float, float, float]) -> tuple[float, float, float]:
    return (-left[0], left[1], left[2])


def rest_joints() -> np.ndarray:
    """The rest joints [24,3] of the T-pose in metres (y up, facing +z, left on +x)."""
    left = {  # (x, y, z) of the body's left side; the right side mirrors x
        "hip": (0.08, -0.31, 0.02),
        "knee": (0.105, -0.68, 0.03),
        "ankle": (0.09, -1.07, -0.01),
        "foot": (0.115, -1.135, 0.11),
        "collar": (0.08, 0.20, -0.01),
        "shoulder": (0.175, 0.225, -0.02),
        "elbow": (0.43, 0.215, -0.035),
        "wrist": (0.685, 0.218, -0.045),
        "hand": (0.77, 0.212, -0.055),
    }
    centre = {
        "pelvis": (0.0, -0.22, 0.02),
        "spine1": (0.0, -0.11, 0.0),
        "spine2": (0.0, 0.025, 0.0),
        "spine3": (0.0, 0.085, 0.01),
        "neck": (0.0, 0.295, -0.01),
        "head": (0.0, 0.365, 0.035),
    }
    joints = []
    for name in SMPL_JOINT_NAMES:
        if name in centre:
            joints.append(centre[name])
        else:
            side, part = name.split("_")
            joints.append(left[part] if side == "left" else _mirror(left[part]))
    return np.array(joints, dtype=np.float64)


def _index(name: str) -> int:
    return SMPL_JOINT_NAMES.index(name)


def end_points(joints: np.ndarray) -> dict[int, np.ndarray]:
    """Where the bones of the leaf joints end: toe tips, the crown, fingertips."""
    ends = {_index("head"): np.array([0.0, 0.52, 0.03])}
    for side, s in (("left", 1.0), ("right", -1.0)):
        ends[_index(f"{side}_foot")] = np.array([s * 0.12, -1.15, 0.17])
        ends[_index(f"{side}_hand")] = np.array([s * 0.87, 0.205, -0.06])
    return ends


# Radius of the body at each joint and at the bone ends of the leaves (metres): a bone
# segment's radius tapers from its start joint's to its end's. Weights compare a vertex's
# distance to each segment with the segment's radius there, so that the thick trunk does not
# claim the thin neck or arms, and the falloffs of pose correctives scale with it.
JOINT_RADIUS = {
    "pelvis": 0.13,
    "hip": 0.085,
    "spine1": 0.13,
    "knee": 0.055,
    "spine2": 0.13,
    "ankle": 0.04,
    "spine3": 0.13,
    "foot": 0.035,
    "neck": 0.055,
    "collar": 0.07,
    "head": 0.06,
    "shoulder": 0.05,
    "elbow": 0.038,
    "wrist": 0.03,
    "hand": 0.03,
}
END_RADIUS = {"foot": 0.03, "head": 0.09, "hand": 0.025}


def _part(name: str) -> str:
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


Segment = tuple[int, int, np.ndarray, np.ndarray, float, float]


def segments(joints: np.ndarray) -> list[Segment]:
    """Bone segments (owner joint, child joint or -1, start, end, start radius, end radius):
    each joint to each of its children, and the leaves (feet, head, hands) to their ends."""
    ends = end_points(joints)
    result = []
    for j, name in enumerate(SMPL_JOINT_NAMES):
        radius = JOINT_RADIUS[_part(name)]
        children = [c for c, p in enumerate(SMPL_PARENTS) if p == j]
        for c in children:
            result.append(
                (j, c, joints[j], joints[c], radius, JOINT_RADIUS[_part(SMPL_JOINT_NAMES[c])])
            )
        if not children:
            result.append((j, -1, joints[j], ends[j], radius, END_RADIUS[_part(name)]))
    return result


# ----------------------------------------------------------------------------- surface


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distance fields, blending over a band k wide."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _capsule(p: np.ndarray, a, b, ra: float, rb: float) -> np.ndarray:
    """Distance [N] to a capsule from a to b with radius ra at a and rb at b (tapered)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ab = b - a
    t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * ab, axis=1) - (ra + t * (rb - ra))


def _ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate distance [N] to an axis-aligned ellipsoid (exact on its surface)."""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def body_sdf(p: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Signed distance [N] (approximate, metres, negative inside) of points [N,3] to the body."""
    J = {name: joints[i] for i, name in enumerate(SMPL_JOINT_NAMES)}
    torso = _ellipsoid(p, (0.0, -0.235, 0.0), (0.165, 0.12, 0.115))
    torso = _smin(torso, _ellipsoid(p, (0.0, -0.06, 0.015), (0.145, 0.17, 0.11)), 0.06)
    torso = _smin(torso, _ellipsoid(p, (0.0, 0.12, 0.0), (0.165, 0.15, 0.115)), 0.06)
    for s in (1.0, -1.0):  # shoulder girdle
        torso = _smin(
            torso, _capsule(p, (0.0, 0.22, -0.025), (s * 0.17, 0.225, -0.025), 0.06, 0.055), 0.05
        )
    head = _capsule(p, (0.0, 0.24, -0.015), (0.0, 0.40, 0.0), 0.056, 0.05)
    head = _smin(head, _ellipsoid(p, (0.0, 0.455, 0.03), (0.078, 0.11, 0.097)), 0.03)
    body = _smin(torso, head, 0.04)
    legs, arms = [], []
    for side, s in (("left", 1.0), ("right", -1.0)):
        leg = _capsule(p, J[f"{side}_hip"], J[f"{side}_knee"], 0.08, 0.055)
        leg = _smin(leg, _capsule(p, J[f"{side}_knee"], J[f"{side}_ankle"], 0.053, 0.036), 0.02)
        leg = _smin(leg, _ellipsoid(p, (s * 0.10, -0.84, -0.01), (0.048, 0.13, 0.05)), 0.03)
        leg = _smin(
            leg, _capsule(p, (s * 0.09, -1.14, -0.035), (s * 0.115, -1.15, 0.15), 0.04, 0.035), 0.03
        )
        legs.append(leg)
        arm = _capsule(p, J[f"{side}_shoulder"], J[f"{side}_elbow"], 0.05, 0.037)
        arm = _smin(arm, _capsule(p, J[f"{side}_elbow"], J[f"{side}_wrist"], 0.037, 0.027), 0.02)
        arm = _smin(arm, _ellipsoid(p, (s * 0.775, 0.213, -0.05), (0.095, 0.024, 0.045)), 0.02)
        arms.append(arm)
    body = _smin(body, np.minimum(legs[0], legs[1]), 0.04)  # the legs meet without webbing
    return _smin(body, np.minimum(arms[0], arms[1]), 0.04)


def _gradient(p: np.ndarray, joints: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central-difference gradient [N,3] of body_sdf."""
    grad = np.empty_like(p)
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = eps
        grad[:, axis] = (body_sdf(p + step, joints) - body_sdf(p - step, joints)) / (2 * eps)
    return grad


def _project(p: np.ndarray, joints: np.ndarray, steps: int = 3) -> np.ndarray:
    """Moves points [N,3] onto the zero level set by Newton steps along the gradient."""
    for _ in range(steps):
        grad = _gradient(p, joints)
        p = p - (body_sdf(p, joints) / np.maximum((grad * grad).sum(1), 1e-12))[:, None] * grad
    return p


def _adjacency(faces: np.ndarray, n_vertices: int) -> scipy.sparse.csr_matrix:
    """Row-normalised vertex adjacency [V,V] of a triangle mesh (uniform neighbour mean)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adjacency = scipy.sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)
    ).tocsr()
    adjacency.data[:] = 1.0  # each edge counted once
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return scipy.sparse.diags(1.0 / degree) @ adjacency


def make_surface(joints: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed, outward-facing triangle mesh (vertices [V,3], faces [F,3]) of the body."""
    import trimesh
    from skimage.measure import marching_cubes

    lo = np.array([-0.95, -1.25, -0.22]) - 2 * voxel
    hi = np.array([0.95, 0.62, 0.27]) + 2 * voxel
    axes = [lo[i] + voxel * np.arange(int(np.ceil((hi[i] - lo[i]) / voxel)) + 1) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    sdf = body_sdf(grid.reshape(-1, 3), joints).reshape(grid.shape[:3])
    verts, faces, _, _ = marching_cubes(
        sdf, level=0.0, spacing=(voxel,) * 3, allow_degenerate=False
    )
    mesh = trimesh.Trimesh(verts + lo, faces, process=True)
    mesh.remove_unreferenced_vertices()
    if mesh.volume < 0:
        mesh.invert()
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)
    neighbours = _adjacency(faces, len(vertices))
    for _ in range(RELAX_ROUNDS):
        vertices = vertices + 0.5 * (neighbours @ vertices - vertices)
        vertices = _project(vertices, joints)
    return vertices, faces


# ----------------------------------------------------------------------------- rigging


def _closest_on_segments(p: np.ndarray, segs) -> tuple[np.ndarray, np.ndarray]:
    """Per point and segment: the parameter t [N,S] in [0,1] and the offset p - c(t) [N,S,3]."""
    a = np.stack([s[2] for s in segs])
    ab = np.stack([s[3] for s in segs]) - a
    t = np.clip(np.einsum("nsc,sc->ns", p[:, None] - a, ab) / (ab * ab).sum(1), 0.0, 1.0)
    return t, p[:, None] - (a + t[..., None] * ab)


def segment_weights(vertices: np.ndarray, faces: np.ndarray, segs) -> np.ndarray:
    """Smooth weights [V,S] of each vertex on each bone segment (rows sum to 1)."""
    t, offset = _closest_on_segments(vertices, segs)
    start, end = np.array([s[4] for s in segs]), np.array([s[5] for s in segs])
    label = np.argmin(np.linalg.norm(offset, axis=2) / (start + t * (end - start)), axis=1)
    weights = np.zeros((len(vertices), len(segs)))
    weights[np.arange(len(vertices)), label] = 1.0
    neighbours = _adjacency(faces, len(vertices))
    for _ in range(DIFFUSE_ROUNDS):
        weights = 0.5 * weights + 0.5 * (neighbours @ weights)
    return weights / weights.sum(axis=1, keepdims=True)


def joint_weights(seg_weights: np.ndarray, segs) -> np.ndarray:
    """Skinning weights [V,24]: segment weights summed per owner joint, small ones cut."""
    owner = np.array([s[0] for s in segs])
    weights = np.zeros((seg_weights.shape[0], len(SMPL_JOINT_NAMES)))
    np.add.at(weights.T, owner, seg_weights.T)
    weights = np.maximum(weights - WEIGHT_CUT, 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def joint_regressor(vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """J_regressor [24,V]: per joint, non-negative weights summing to 1 over nearby vertices
    whose combination reproduces the joint (ridge-spread least squares)."""
    regressor = np.zeros((len(joints), len(vertices)))
    for j, joint in enumerate(joints):
        distance = np.linalg.norm(vertices - joint, axis=1)
        nearest = distance.min()
        for grow in (1.5, 2.0, 3.0, 4.0):
            near = np.flatnonzero(distance <= grow * nearest + 0.01)
            n = len(near)
            system = np.vstack(
                [
                    100.0 * vertices[near].T,
                    1000.0 * np.ones((1, n)),
                    np.sqrt(REGRESSOR_RIDGE) * np.eye(n),
                ]
            )
            target = np.concatenate([100.0 * joint, [1000.0], np.zeros(n)])
            w, _ = nnls(system, target, maxiter=50 * n)
            w /= w.sum()
            if np.linalg.norm(w @ vertices[near] - joint) < 1e-3:
                break
        w[w < 1e-4] = 0.0
        regressor[j, near] = w / w.sum()
    return regressor


# ----------------------------------------------------------------------------- blend shapes


def _joint_shift(joints: np.ndarray, stretch: dict[str, float]) -> np.ndarray:
    """Joint displacements [24,3] when the bones ending at the joints named in `stretch` (by
    part: "elbow" is the upper arm, "collar" the bone from spine3 to a collar) lengthen by
    those fractions; every joint below a lengthened bone moves with its end."""
    shift = np.zeros_like(joints)
    for j in range(1, len(joints)):
        p = SMPL_PARENTS[j]
        fraction = stretch.get(_part(SMPL_JOINT_NAMES[j]), 0.0)
        shift[j] = shift[p] + fraction * (joints[j] - joints[p])
    return shift


def _stretch_field(vertices, joints, segs, seg_w, t, stretch) -> np.ndarray:
    """Vertex displacements [V,3] that follow lengthened bones, blended over segments."""
    shift = _joint_shift(joints, stretch)
    field = np.zeros_like(vertices)
    for s, (owner, child, _, _, _, _) in enumerate(segs):
        end_move = shift[child] if child >= 0 else shift[owner]
        move = shift[owner][None] + t[:, s, None] * (end_move - shift[owner])[None]
        field += seg_w[:, s, None] * move
    return field


def _girth_field(offset, segs, seg_w, girth: dict[str, float]) -> np.ndarray:
    """Vertex displacements [V,3] scaling the distance from the bones by per-part fractions."""
    field = np.zeros((offset.shape[0], 3))
    for s, (owner, _, _, _, _, _) in enumerate(segs):
        fraction = girth.get(_part(SMPL_JOINT_NAMES[owner]), 0.0)
        if fraction:
            field += seg_w[:, s, None] * fraction * offset[:, s]
    return field


def _bump(vertices, normals, centre, sigma: float, facing) -> np.ndarray:
    """A Gaussian bump [V] around `centre` on the surface facing `facing` (a unit vector)."""
    falloff = np.exp(-((vertices - np.asarray(centre)) ** 2).sum(1) / (2 * sigma**2))
    return falloff * np.clip(normals @ np.asarray(facing, dtype=np.float64), 0.0, 1.0)


SHAPE_NAMES = (
    "stature",
    "mass",
    "leg_length",
    "arm_length",
    "shoulder_width",
    "hip_width",
    "torso_length",
    "belly",
    "chest",
    "neck_length",
    "head_size",
    "limb_girth",
    "hand_foot_size",
)


def shape_directions(vertices, normals, joints, segs, seg_w) -> np.ndarray:
    """shapedirs [V,3,13]: one displacement field per name in SHAPE_NAMES, per unit beta."""
    t, offset = _closest_on_segments(vertices, segs)
    owner = np.array([s[0] for s in segs])

    def stretch(**fractions: float) -> np.ndarray:
        return _stretch_field(vertices, joints, segs, seg_w, t, fractions)

    def girth(**fractions: float) -> np.ndarray:
        return _girth_field(offset, segs, seg_w, fractions)

    def scale_about(centre: str, owners: tuple[str, ...], fraction: float) -> np.ndarray:
        """Scales what the bones of `owners` carry about the joint `centre`."""
        amount = seg_w[:, np.isin(owner, [_index(n) for n in owners])].sum(1)
        return fraction * amount[:, None] * (vertices - joints[_index(centre)])

    def extremities(fraction: float) -> np.ndarray:
        return sum(
            scale_about(f"{side}_{base}", (f"{side}_{base}", f"{side}_{tip}"), fraction)
            for side in ("left", "right")
            for base, tip in (("wrist", "hand"), ("ankle", "foot"))
        )

    trunk = {"pelvis": 0.10, "spine1": 0.12, "spine2": 0.10, "spine3": 0.08}
    limbs = {"hip": 0.08, "knee": 0.06, "shoulder": 0.07, "elbow": 0.05}
    belly = _bump(vertices, normals, (0.0, -0.09, 0.12), 0.09, (0.0, 0.0, 1.0))[:, None]
    chest = _bump(vertices, normals, (0.0, 0.12, 0.11), 0.08, (0.0, 0.0, 1.0))[:, None]
    fields = [
        0.04 * (vertices - joints[_index("pelvis")]),
        girth(**trunk, **limbs, neck=0.05, collar=0.04) + 0.015 * belly * normals,
        stretch(knee=0.05, ankle=0.05),
        stretch(elbow=0.05, wrist=0.05),
        stretch(collar=0.1, shoulder=0.15),
        stretch(hip=0.12) + girth(pelvis=0.06),
        stretch(spine1=0.05, spine2=0.05, spine3=0.05, neck=0.05),
        0.02 * belly * normals,
        0.015 * chest * normals + girth(spine3=0.04),
        stretch(head=0.2),
        scale_about("head", ("head",), 0.06),
        girth(hip=0.1, knee=0.1, shoulder=0.1, elbow=0.1),
        extremities(0.08),
    ]
    return np.stack(fields, axis=-1)


# Swelling (metres at a 90-degree bend) and falloff (metres) of each joint's pose corrective.
CORRECTIVE = {
    "knee": (0.015, 0.06),
    "elbow": (0.012, 0.05),
    "hip": (0.012, 0.08),
    "shoulder": (0.012, 0.07),
    "collar": (0.006, 0.06),
    "neck": (0.006, 0.05),
    "head": (0.004, 0.05),
    "wrist": (0.004, 0.04),
    "hand": (0.003, 0.04),
    "ankle": (0.005, 0.04),
    "foot": (0.003, 0.04),
    "spine1": (0.008, 0.08),
    "spine2": (0.008, 0.08),
    "spine3": (0.008, 0.08),
}


def pose_directions(vertices, normals, joints, weights) -> np.ndarray:
    """posedirs [V,3,207]: per non-root joint k, a swelling along the normals near the joint,
    scaled by the bend -u^T (R_k - I) u of its bone direction u."""
    ends = end_points(joints)
    posedirs = np.zeros((len(vertices), 3, 9 * (len(joints) - 1)))
    for k in range(1, len(joints)):
        name = SMPL_JOINT_NAMES[k]
        children = [c for c, p in enumerate(SMPL_PARENTS) if p == k]
        target = joints[children[0]] if children else ends[k]  # spine3: towards the neck
        u = (target - joints[k]) / np.linalg.norm(target - joints[k])
        size, sigma = CORRECTIVE[_part(name)]
        falloff = np.exp(-((vertices - joints[k]) ** 2).sum(1) / (2 * sigma**2))
        falloff = np.maximum(falloff - FALLOFF_CUT, 0.0) / (1.0 - FALLOFF_CUT)  # local, continuous
        swelling = size * (weights[:, k] * falloff)[:, None] * normals  # [V,3] at bend 1
        posedirs[:, :, 9 * (k - 1) : 9 * k] = -swelling[:, :, None] * np.outer(u, u).ravel()
    return posedirs


# ----------------------------------------------------------------------------- the body


def make_body(voxel: float = VOXEL) -> dict[str, np.ndarray]:
    """The built-in body as official-format arrays (float64): v_template, shapedirs, posedirs,
    J_regressor, weights, kintree_table, f, and J (the regressed rest joints)."""
    import trimesh

    joints = rest_joints()
    vertices, faces = make_surface(joints, voxel)
    normals = np.asarray(trimesh.Trimesh(vertices, faces, process=False).vertex_normals)
    segs = segments(joints)
    seg_w = segment_weights(vertices, faces, segs)
    weights = joint_weights(seg_w, segs)
    regressor = joint_regressor(vertices, joints)
    return {
        "v_template": vertices,
        "shapedirs": shape_directions(vertices, normals, joints, segs, seg_w),
        "posedirs": pose_directions(vertices, normals, joints, weights),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree_table(SMPL_PARENTS),
        "f": faces,
        "J": regressor @ vertices,
    }


def write_body(body: dict[str, np.ndarray], path: str | Path) -> Path:
    """Writes the body as a compressed .npz (float32 arrays, uint32 faces, int64 tree)."""
    from mp3d.io import atomic_path

    arrays = {}
    for key, value in body.items():
        if key == "f":
            arrays[key] = value.astype(np.uint32)
        elif key == "kintree_table":
            arrays[key] = value.astype(np.int64)
        else:
            arrays[key] = value.astype(np.float32)
    weights = arrays["weights"].astype(np.float64)  # renormalise after rounding to float32
    arrays["weights"] = (weights / weights.sum(1, keepdims=True)).astype(np.float32)
    arrays["shape_names"] = np.array(SHAPE_NAMES)
    arrays["joint_names"] = np.array(SMPL_JOINT_NAMES)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT), help="output .npz (default: %(default)s)")
    parser.add_argument(
        "--voxel",
        type=float,
        default=VOXEL,
        help="marching-cubes step in metres (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    body = make_body(args.voxel)
    path = write_body(body, args.out)
    error = np.linalg.norm(body["J"] - rest_joints(), axis=1).max()
    print(
        f"{path}: {len(body['v_template'])} vertices, {len(body['f'])} faces, "
        f"{body['shapedirs'].shape[-1]} shape directions, regressed joints within "
        f"{error * 1000:.2f} mm, {path.stat().st_size / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
