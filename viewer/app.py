"""The viewer: a viser server holding the layers opened from paths, the controls shared by
all of them (up direction, framing, server-side rendering), one render-on-move loop per
connected browser, and a list of the paths that could not be shown."""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path

import numpy as np
import torch

from mp3d.rendering import Rendering, turbo
from mp3d.viewer.kinds import open_path
from mp3d.viewer.layers import Layer, node_name
from mp3d.viewer.progressive import ProgressiveRenderer, ViewRequest

__all__ = ["OUTPUTS", "UP_AXES", "Viewer", "framing", "output_image"]

UP_AXES = ("+z", "-z", "+y", "-y", "+x", "-x")
OUTPUTS = ("rgb", "depth", "opacity")
OFF = "off"
FOV_Y = math.radians(50.0)  # the first view's vertical field of view
ELEVATION = math.radians(25.0)
PANEL_WIDTH = 320  # pixels


def _axis(name: str) -> np.ndarray:
    if name not in UP_AXES:
        raise ValueError(f"up must be one of {', '.join(UP_AXES)}, got {name!r}")
    vector = np.zeros(3)
    vector["xyz".index(name[1])] = 1.0 if name[0] == "+" else -1.0
    return vector


def framing(bounds: np.ndarray, up: str, fov_y: float = FOV_Y) -> tuple[np.ndarray, np.ndarray]:
    """(camera position [3], look-at point [3]) of a first view that frames the box bounds
    [2,3] with a vertical field of view fov_y (radians): the camera looks at the box centre
    from ELEVATION above the plane normal to `up`, far enough for the box's bounding sphere
    to fit in the view."""
    centre = 0.5 * (bounds[0] + bounds[1])
    radius = max(0.5 * float(np.linalg.norm(bounds[1] - bounds[0])), 1e-3)
    up_vector = _axis(up)
    # A front-right diagonal seen from above, for z-up and y-up scenes alike.
    preferred = np.array([1.0, -1.0, 1.0])
    horizontal = preferred - (preferred @ up_vector) * up_vector
    horizontal /= np.linalg.norm(horizontal)
    direction = math.cos(ELEVATION) * horizontal + math.sin(ELEVATION) * up_vector
    distance = 1.05 * radius / math.sin(0.5 * fov_y)
    return centre + distance * direction, centre


def output_image(rendering: Rendering, output: str, depth_range: tuple[float, float]) -> np.ndarray:
    """The image [H,W,3] float32 in [0,1] to show of a rendering: its RGB, its opacity as
    grey, or its surface depth (depth / opacity) in the Turbo colour map over depth_range
    (near, far; camera z in world units; red near, blue far), white where transparent."""
    if output == "rgb":
        image = rendering.rgb
    elif output == "opacity":
        image = rendering.opacity[..., None].expand(*rendering.opacity.shape, 3)
    elif output == "depth":
        near, far = depth_range
        opacity = rendering.opacity.clamp(0, 1)
        surface = rendering.depth / opacity.clamp(min=1e-6)
        nearness = ((far - surface) / max(far - near, 1e-6)).clamp(0, 1)
        colour = turbo(0.1 + 0.85 * nearness).to(surface.device)
        image = colour * opacity[..., None] + (1.0 - opacity[..., None])
    else:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    return image.detach().float().clamp(0, 1).cpu().numpy()


class Viewer:
    """An interactive viewer on host:port (127.0.0.1 unless told otherwise).

    preview_side / full_side: pixels on the longer side of server-side renders while the
    camera moves / once it has been still for settle_s seconds."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        preview_side: int = 96,
        full_side: int = 384,
        settle_s: float = 0.25,
        verbose: bool = False,
    ) -> None:
        import viser

        self.server = viser.ViserServer(host=host, port=port, verbose=verbose)
        self.host = host
        self.layers: list[Layer] = []
        self.errors: list[str] = []
        self.render_settings = {"preview_side": preview_side, "full_side": full_side}
        self.settle_s = settle_s
        self.renderers: dict[int, ProgressiveRenderer] = {}
        self.server_layer: Layer | None = None
        self.output = "rgb"
        self.up = "+z"
        self._lock = threading.Lock()
        self._build_controls()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.get_port()

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------------- controls

    def _build_controls(self) -> None:
        gui = self.server.gui
        # A side panel docked right, as in nerfstudio: the canvas is never covered by controls.
        gui.configure_theme(show_share_button=False)
        gui.main_panel.dock_right()
        gui.main_panel.set_width(PANEL_WIDTH)  # fixed: long labels must not resize the canvas
        with gui.add_folder("view"):
            self.up_control = gui.add_dropdown("up direction", UP_AXES, initial_value=self.up)
            self.up_control.on_update(lambda _: self.set_up(self.up_control.value))
            gui.add_button("frame content").on_click(lambda _: self.frame(move_clients=True))
        with gui.add_folder("server render"):
            self.draw_control = gui.add_dropdown("draw", (OFF,), initial_value=OFF)
            self.draw_control.on_update(lambda _: self._select(self.draw_control.value))
            self.output_control = gui.add_dropdown("output", OUTPUTS, initial_value="rgb")
            self.output_control.on_update(lambda _: self.set_output(self.output_control.value))
            self.render_status = gui.add_markdown("")
        self.problems = gui.add_markdown("")

    def set_up(self, up: str) -> None:
        """Makes the world axis `up` ("+z", "-y", ...) the scene's up direction."""
        _axis(up)
        self.up = up
        if self.up_control.value != up:
            self.up_control.value = up
        self.server.scene.set_up_direction(up)
        for client in self.server.get_clients().values():
            client.camera.up_direction = _axis(up)

    def set_output(self, output: str) -> None:
        """Shows the server-side render's `output`: "rgb", "depth" or "opacity"."""
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.output = output
        if self.output_control.value != output:
            self.output_control.value = output
        self.refresh()

    def _select(self, label: str) -> None:
        layer = next((layer for layer in self.layers if layer.label == label), None)
        if label != OFF and layer is None:
            raise ValueError(f"no server-rendered layer is called {label!r}")
        self.set_server_layer(layer)

    def set_server_layer(self, layer: Layer | None) -> None:
        """Draws `layer` on the server at every client's camera (None: nothing)."""
        if layer is not None and not layer.renders_on_server:
            raise ValueError(f"{layer.label} is drawn in the browser, not on the server")
        if self.server_layer is not None:
            self.server_layer.set_server_rendered(False)
        self.server_layer = layer
        label = OFF if layer is None else layer.label
        if self.draw_control.value != label:
            self.draw_control.value = label
        if layer is None:
            for client in self.server.get_clients().values():
                client.scene.set_background_image(None)
            self.render_status.content = ""
        else:
            layer.set_server_rendered(True)
        self.refresh()

    def refresh(self) -> None:
        """Renders every client's view again (the content or the output changed)."""
        for renderer in list(self.renderers.values()):
            renderer.refresh()

    # ------------------------------------------------------------------------- content

    def add(self, path: str | Path) -> Layer | None:
        """Opens `path` and shows it; None (and the error listed in the page and on stderr)
        if it cannot be shown."""
        name = node_name(path, len(self.layers) + len(self.errors))
        try:
            layer = open_path(path, name)
        except (ValueError, OSError, ImportError, KeyError, RuntimeError) as error:
            self.report(str(path), error)
            return None
        return self.add_layer(layer)

    def add_layer(self, layer: Layer) -> Layer | None:
        """Shows an opened layer; the first radiance field is drawn on the server at once."""
        try:
            layer.attach(self.server)
        except (ValueError, OSError, RuntimeError) as error:
            self.report(str(layer.path), error)
            return None
        self.layers.append(layer)
        options = [OFF] + [item.label for item in self.layers if item.renders_on_server]
        self.draw_control.options = options
        if layer.server_only and self.server_layer is None:
            self.set_server_layer(layer)
        if len(self.layers) == 1 and layer.up() is not None:
            self.set_up(layer.up())
        self.frame()
        return layer

    def report(self, path: str, error: BaseException) -> str:
        """Lists a path that could not be shown (page, notification and stderr); returns the
        one-line message."""
        text = " ".join(str(error).split()) or type(error).__name__
        message = text if text.startswith(path) else f"{path}: {text}"
        self.errors.append(message)
        print(f"mp3d view: error: {message}", file=sys.stderr)
        lines = "\n".join(f"- `{line}`" for line in self.errors)
        self.problems.content = f"**Not shown**\n\n{lines}"
        for client in self.server.get_clients().values():
            client.add_notification("mp3d view: not shown", message, color="red")
        return message

    def bounds(self) -> np.ndarray | None:
        """The box [2,3] around every layer's content (None: nothing has a position)."""
        boxes = [box for box in (layer.bounds() for layer in self.layers) if box is not None]
        if not boxes:
            return None
        boxes = np.stack(boxes)
        return np.stack([boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)])

    def frame(self, move_clients: bool = False) -> None:
        """Sets the first view (and "reset view") to frame the content; with move_clients,
        moves the connected browsers' cameras there too."""
        bounds = self.bounds()
        if bounds is None:
            return
        position, look_at = framing(bounds, self.up)
        initial = self.server.initial_camera
        initial.fov = FOV_Y
        initial.position, initial.look_at, initial.up = position, look_at, _axis(self.up)
        if move_clients:
            for client in self.server.get_clients().values():
                self.look(client, position, look_at)

    def look(self, client, position, look_at, fov_y: float = FOV_Y) -> None:
        """Moves `client`'s camera to `position` [3] looking at `look_at` [3]."""
        with client.atomic():
            client.camera.up_direction = _axis(self.up)
            client.camera.fov = fov_y
            client.camera.position = np.asarray(position, dtype=np.float64)
            client.camera.look_at = np.asarray(look_at, dtype=np.float64)

    # ------------------------------------------------------------------------- clients

    def _connect(self, client) -> None:
        renderer = ProgressiveRenderer(
            lambda camera, client=client: self._render_strip(client, camera),
            lambda image, level, client=client: self._show(client, image, level),
            settle_s=self.settle_s,
            n_strips=self._render_strips,
            on_error=lambda error: self.report("server render", error),
            **self.render_settings,
        )
        with self._lock:
            self.renderers[client.client_id] = renderer.start()
        client.camera.on_update(lambda camera: renderer.request(view_of(camera)))
        for message in self.errors:
            client.add_notification("mp3d view: not shown", message, color="red")

    def _render_strips(self) -> int:
        layer = self.server_layer
        return layer.render_strips if layer is not None else 1

    def _disconnect(self, client) -> None:
        with self._lock:
            renderer = self.renderers.pop(client.client_id, None)
        if renderer is not None:
            renderer.stop()

    def _depth_range(self, camera) -> tuple[float, float]:
        bounds = self.server_layer.bounds() if self.server_layer is not None else None
        if bounds is None:
            return 0.0, 1.0
        centre = 0.5 * (bounds[0] + bounds[1])
        radius = 0.5 * float(np.linalg.norm(bounds[1] - bounds[0]))
        viewmat = camera.viewmat.double()
        z = float(viewmat[2, :3] @ torch.as_tensor(centre) + viewmat[2, 3])
        return max(z - radius, 0.0), z + radius

    def _render_strip(self, client, camera) -> np.ndarray:
        layer = self.server_layer
        if layer is None:
            return np.ones((camera.height, camera.width, 3), dtype=np.float32)
        return output_image(layer.render(camera), self.output, self._depth_range(camera))

    def _show(self, client, image: np.ndarray, level: str) -> None:
        if self.server_layer is None:
            return
        pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        client.scene.set_background_image(pixels, format="jpeg", jpeg_quality=90)
        renderer = self.renderers.get(client.client_id)
        if renderer is not None:
            seconds = renderer.last_seconds
            self.render_status.content = (
                f"{image.shape[1]}x{image.shape[0]} px ({level}); "
                f"preview {1000 * seconds['preview']:.0f} ms, full {1000 * seconds['full']:.0f} ms"
            )

    def stop(self) -> None:
        """Stops the render loops and the server."""
        for renderer in list(self.renderers.values()):
            renderer.stop()
        self.server.stop()


def view_of(camera) -> ViewRequest:
    """The ViewRequest of a viser camera handle."""
    return ViewRequest(
        tuple(float(v) for v in camera.wxyz),
        tuple(float(v) for v in camera.position),
        float(camera.fov),
        float(camera.aspect),
    )
