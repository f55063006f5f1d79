"""The viewer in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright against `mp3d.viewer.app.Viewer` on 127.0.0.1. For a mesh, a splat PLY, a NeRF
checkpoint and the body: the screenshot's pixels where the object projects differ from the
background, moving the camera through viser's API changes the picture, and a pose slider
changes the body. Set MP3D_VIEWER_SCREENSHOTS=DIR to keep the screenshots (docs/viewer)."""

from __future__ import annotations

import io
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mp3d.transforms import project_points
from mp3d.viewer.headless import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for
from tests.viewer.scenes import write_mesh, write_splats

VIEWPORT = {"width": 900, "height": 420}
BACKGROUND = 255  # viser's page is white
DIFFERENT = 40  # grey levels from the background that count as drawn

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e .[test])"
)
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        not CHROMIUM.is_file() or shutil.which("chromium") is None,
        reason="needs Debian's chromium (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


class Session:
    """A Viewer on a free port and one browser page connected to it."""

    def __init__(self, browser, viewport=None, **viewer_options) -> None:
        from mp3d.viewer.app import Viewer

        self.viewer = Viewer(port=free_port(), **viewer_options)
        self.page = None
        self.browser = browser
        self.viewport = viewport or VIEWPORT

    def open(self) -> Session:
        self.page = self.browser.new_page(viewport=self.viewport)
        self.page.goto(self.viewer.url)
        wait_for(lambda: self.viewer.server.get_clients(), what="the page to connect")
        self.client = next(iter(self.viewer.server.get_clients().values()))
        wait_for(lambda: self.client.client_id in self.viewer.renderers, what="a render loop")
        # Headless Chromium's "software WebGL" notice would cover the top-left of the canvas.
        self.page.add_style_tag(
            content="[class*='mantine-Notification'] {display: none !important}"
        )
        # The control panel takes its width as its contents arrive: wait for the canvas size.
        # (The camera's image_width is not it: viser lowers the pixel ratio while moving.)
        sizes = []

        def canvas_settled() -> bool:
            sizes.append(self.canvas_size())
            time.sleep(0.25)
            return len(sizes) >= 4 and len(set(sizes[-4:])) == 1

        wait_for(canvas_settled, what="the canvas size to settle")
        self.width, self.height = sizes[-1]
        return self

    def canvas_size(self) -> tuple[int, int]:
        """(width, height) in CSS pixels of the page's largest canvas, the 3D view, which
        starts at the page's top-left corner."""
        return tuple(
            self.page.evaluate(
                """() => {
                    const sizes = [...document.querySelectorAll('canvas')].map(
                        c => c.getBoundingClientRect()).filter(r => r.left < 1 && r.top < 1);
                    const best = sizes.sort((a, b) => b.width * b.height - a.width * a.height)[0];
                    return [Math.round(best.width), Math.round(best.height)];
                }"""
            )
        )

    def close(self) -> None:
        if self.page is not None:
            self.page.close()
        self.viewer.stop()

    def screenshot(self, settle: float = 0.5, timeout: float = 30.0) -> np.ndarray:
        """The canvas (left of the fixed control panel) once two screenshots `settle` s
        apart agree: uint8 [H,W,3]."""
        from PIL import Image

        def shot() -> np.ndarray:
            image = Image.open(io.BytesIO(self.page.screenshot())).convert("RGB")
            return np.asarray(image)[: self.height, : self.width]

        previous, deadline = shot(), time.monotonic() + timeout
        while True:
            time.sleep(settle)
            current = shot()
            same_size = current.shape == previous.shape
            if same_size and np.abs(current.astype(int) - previous).max() <= 2:
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not settle within {timeout} s")
            previous = current

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates [N,2] in the canvas of world points [N,3] seen by the client."""
        from mp3d.viewer.cameras import camera_from_pose

        camera = self.client.camera
        mp3d_camera = camera_from_pose(
            camera.wxyz, camera.position, camera.fov, self.width, self.height
        )
        pixels, _ = project_points(
            torch.as_tensor(points, dtype=torch.float32), mp3d_camera.K, mp3d_camera.viewmat
        )
        return pixels.numpy()

    def orbit(self, degrees: float) -> None:
        """Turns the client's camera about the look-at point by `degrees` around the up axis."""
        camera = self.client.camera
        up = np.asarray(camera.up_direction, dtype=np.float64)
        up /= np.linalg.norm(up)
        offset = camera.position - camera.look_at
        angle = math.radians(degrees)
        turned = (
            offset * math.cos(angle)
            + np.cross(up, offset) * math.sin(angle)
            + up * (up @ offset) * (1 - math.cos(angle))
        )
        target = camera.look_at.copy()
        with self.client.atomic():
            camera.position = target + turned
            camera.look_at = target

    def save(self, image: np.ndarray, name: str) -> None:
        folder = os.environ.get("MP3D_VIEWER_SCREENSHOTS")
        if folder:
            from PIL import Image

            Path(folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(Path(folder) / f"{name}.png", optimize=True)


@pytest.fixture
def session(browser):
    sessions = []

    def make(**options) -> Session:
        sessions.append(Session(browser, **options))
        return sessions[-1]

    yield make
    for item in sessions:
        item.close()


def drawn_fraction(image: np.ndarray, pixels: np.ndarray) -> float:
    """The fraction of the in-canvas projected pixels whose colour differs from the
    background by more than DIFFERENT grey levels in some channel."""
    h, w = image.shape[:2]
    cols, rows = np.floor(pixels[:, 0]).astype(int), np.floor(pixels[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    assert inside.mean() > 0.5, f"only {inside.mean():.0%} of the object projects into the view"
    values = image[rows[inside], cols[inside]].astype(int)
    return float((np.abs(values - BACKGROUND).max(axis=1) > DIFFERENT).mean())


def background_fraction(image: np.ndarray, pixels: np.ndarray, margin: int = 12) -> float:
    """The fraction of pixels outside the projected points' bounding box (grown by `margin`)
    that show the background."""
    h, w = image.shape[:2]
    lo = np.floor(pixels.min(axis=0)).astype(int) - margin
    hi = np.ceil(pixels.max(axis=0)).astype(int) + margin
    outside = np.ones((h, w), dtype=bool)
    outside[max(lo[1], 0) : max(hi[1], 0), max(lo[0], 0) : max(hi[0], 0)] = False
    # The axes gizmo sits in the bottom-left corner.
    outside[h - 90 :, :90] = False
    values = image[outside].astype(int)
    return float((np.abs(values - BACKGROUND).max(axis=1) <= DIFFERENT).mean())


def check_drawn_and_moves(
    session: Session, points: np.ndarray, name: str, extent: np.ndarray | None, wait=None
):
    """Screenshots before and after orbiting 60 degrees: the object is drawn where `points`
    [N,3] (inside it) project each time, the background shows outside the projection of
    `extent` [M,3] (points bounding it; None: not checked), and the picture changes."""
    if wait is not None:
        wait()
    before = session.screenshot()
    session.save(before, name)
    pixels = session.project(points)
    assert drawn_fraction(before, pixels) > 0.8
    if extent is not None:
        assert background_fraction(before, session.project(extent)) > 0.9
    session.orbit(60.0)
    if wait is not None:
        wait()
    after = session.screenshot()
    pixels_after = session.project(points)
    assert drawn_fraction(after, pixels_after) > 0.8
    assert np.abs(after.astype(int) - before).mean() > 2.0
    assert np.abs(pixels_after - pixels).max() > 10.0  # the object did move in the view
    return before, after


def test_mesh_is_drawn_and_follows_the_camera(session, tmp_path):
    s = session()
    layer = s.viewer.add(write_mesh(tmp_path / "sphere.ply"))
    assert layer is not None and layer.has_vertex_colours()
    s.open()
    # Points just inside the surface: every one of them is covered by the drawn sphere.
    vertices = np.asarray(layer.mesh.vertices)
    check_drawn_and_moves(s, vertices * 0.9, "mesh", extent=vertices)


def test_splats_are_drawn_in_the_browser_and_on_the_server(session, tmp_path):
    s = session(preview_side=48, full_side=160)
    layer = s.viewer.add(write_splats(tmp_path / "splats.ply", n=3000))
    s.open()
    means = layer.model.means.detach().numpy()
    core = means[np.linalg.norm(means, axis=1) < 0.5]
    outline = means / np.linalg.norm(means, axis=1, keepdims=True) * 1.0  # 0.8 + 4 sigma
    check_drawn_and_moves(s, core, "splats", extent=outline)
    renderer = s.viewer.renderers[s.client.client_id]
    done = renderer.completed["full"]
    s.viewer.set_server_layer(layer)  # the exact rasterizer, view-dependent colour
    assert not layer.handle.visible
    wait_for(lambda: renderer.completed["full"] > done, what="the server-side render")
    image = s.screenshot()
    s.save(image, "splats_server")
    assert drawn_fraction(image, s.project(core)) > 0.8


@pytest.fixture(scope="module")
def nerf_checkpoint(tmp_path_factory) -> Path:
    """A hash NeRF of the demo scene after a few steps (a blurry but opaque object)."""
    from mp3d.data.blender import load_blender
    from mp3d.data.demo import write_demo_scene
    from mp3d.nerf import TrainConfig, train

    folder = tmp_path_factory.mktemp("nerf")
    scene = write_demo_scene(
        folder / "scene", n_train=8, n_val=1, n_test=1, resolution=24, progress=False
    )
    config = TrainConfig(
        steps=100,
        lr=3e-2,  # the demo object's silhouette in 100 steps of 256 rays (about 6 s)
        model="hash",
        batch_rays=256,
        n_levels=4,
        log2_table_size=12,
        finest_resolution=64,
        grid_resolution=16,
        checkpoint_every=1000,
    )
    train(
        load_blender(scene, "train", progress=False), config, out_dir=folder / "run", progress=False
    )
    return folder / "run" / "checkpoint.pt"


def test_nerf_checkpoint_is_rendered_at_the_camera(session, nerf_checkpoint):
    s = session(preview_side=32, full_side=128, settle_s=0.1)
    layer = s.viewer.add(nerf_checkpoint)
    assert layer is not None and s.viewer.server_layer is layer
    s.open()
    renderer = s.viewer.renderers[s.client.client_id]

    def refined() -> None:
        wait_for(
            lambda: renderer.next_job() is None and renderer.completed["full"] > 0,
            timeout=60.0,
            what="the refined NeRF render",
        )

    # The demo object sits at the centre of the box: sample a small ball around it.
    centre = layer.bounds().mean(axis=0)
    rng = np.random.default_rng(0)
    core = centre + 0.15 * rng.normal(size=(200, 3)).clip(-2, 2)
    check_drawn_and_moves(s, core, "nerf", extent=None, wait=refined)
    assert renderer.completed["preview"] >= 1  # the move was previewed before refining


def test_body_pose_slider_changes_the_picture(session):
    from mp3d.body.smpl import BUILTIN_BODY
    from mp3d.viewer.bodies import BodyLayer

    s = session()
    layer = s.viewer.add_layer(BodyLayer(BUILTIN_BODY, "/0_body"))
    s.open()
    torso = layer.vertices[np.abs(layer.vertices[:, 0]) < 0.1]
    torso = torso[(torso[:, 1] > layer.joints[0, 1]) & (torso[:, 1] < layer.joints[12, 1])]
    check_drawn_and_moves(s, torso * [0.9, 1.0, 0.9], "body", extent=layer.vertices)
    shoulder = layer.model.joint_names.index("left_shoulder")
    rest = layer.vertices.copy()
    rest_image = s.screenshot()
    layer.sliders[("pose", shoulder, 2)].value = 70.0  # as if the slider were dragged
    assert np.abs(layer.vertices - rest).max() > 0.1
    posed = s.screenshot()
    s.save(posed, "body_posed")
    changed = np.abs(posed.astype(int) - rest_image).max(axis=2) > DIFFERENT
    assert changed.mean() > 0.002, f"only {changed.mean():.2%} of the pixels changed"


def test_dataset_frusta_are_drawn_at_the_cameras(session, tiny_demo_scene):
    s = session()
    layer = s.viewer.add(tiny_demo_scene)
    assert layer is not None and len(layer.frusta) == 8
    s.open()
    image = s.screenshot()
    s.save(image, "dataset")
    pixels = s.project(np.stack([frustum.position for frustum in layer.frusta]))
    # Each frustum's edges meet at its camera centre: something is drawn right around it.
    drawn = 0
    for col, row in np.floor(pixels).astype(int):
        window = image[max(row - 4, 0) : row + 5, max(col - 4, 0) : col + 5].astype(int)
        drawn += bool((np.abs(window - BACKGROUND).max(axis=2) > DIFFERENT).any())
    assert drawn >= 7, f"{drawn} of 8 camera centres have a frustum drawn around them"
    assert background_fraction(image, pixels, margin=60) > 0.9


def test_live_training_shows_the_model_and_its_curves(session, tiny_demo_scene):
    from mp3d.data.blender import load_blender
    from mp3d.nerf import TrainConfig, train
    from mp3d.viewer.live import LiveTraining

    # Taller, so that the training panel's curves show in the screenshot.
    s = session(
        preview_side=32, full_side=128, settle_s=0.1, viewport={"width": 900, "height": 760}
    )
    live = LiveTraining(s.viewer, every=20)
    s.open()
    config = TrainConfig(
        steps=60,
        lr=3e-2,
        model="hash",
        batch_rays=256,
        n_levels=4,
        log2_table_size=12,
        finest_resolution=64,
        grid_resolution=16,
        checkpoint_every=1000,
    )
    live.attach()
    try:
        train(load_blender(tiny_demo_scene, "train", progress=False), config, progress=False)
    finally:
        live.detach()
    assert live.snapshots == 4  # steps 1, 21, 41 and the end
    assert live.layer is s.viewer.server_layer and live.layer.step == 60
    renderer = s.viewer.renderers[s.client.client_id]
    wait_for(
        lambda: renderer.next_job() is None and renderer.completed["full"] > 0,
        timeout=60.0,
        what="the refined render of the trained model",
    )
    live._plot(live._run)
    assert "step 60" in live.status.content
    image = s.screenshot()
    folder = os.environ.get("MP3D_VIEWER_SCREENSHOTS")
    if folder:  # the whole page: the model and the training panel with its curves
        s.page.screenshot(path=str(Path(folder) / "training.png"))
    centre = live.layer.bounds().mean(axis=0)
    rng = np.random.default_rng(0)
    assert drawn_fraction(image, s.project(centre + 0.15 * rng.normal(size=(200, 3)))) > 0.8
