"""Render-on-move for server-side renderers (NeRF, DVR, the exact Gaussian rasterizer).

Each browser client gets one `ProgressiveRenderer`. Every camera update from the client is a
new *generation*: the renderer first draws a small preview (`preview_side` pixels on the
longer side) so the picture follows the mouse, and once the camera has been still for
`settle_s` seconds it draws the refined image (`full_side` pixels). Images are rendered in
horizontal strips, and between strips the renderer checks whether the camera has moved
again; if it has, the render in progress is abandoned and the newer view starts at once.

The scheduling (`next_job`, `run_job`) is plain Python with an injectable clock, so it is
tested without a browser; `start()` runs it on a worker thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mp3d.cameras import Camera
from mp3d.viewer.cameras import camera_from_pose, resolution_for

__all__ = ["Job", "ProgressiveRenderer", "ViewRequest", "strip_cameras"]

PREVIEW, FULL = "preview", "full"


@dataclass(frozen=True)
class ViewRequest:
    """A client's camera: wxyz [4] (R_world_camera), position [3], vertical fov (radians)
    and the aspect (width / height) of its canvas."""

    wxyz: tuple[float, float, float, float]
    position: tuple[float, float, float]
    fov_y: float
    aspect: float

    def camera(self, max_side: int) -> Camera:
        """The mp3d camera of this view with `max_side` pixels on the longer image side."""
        width, height = resolution_for(self.aspect, max_side)
        return camera_from_pose(self.wxyz, self.position, self.fov_y, width, height)


@dataclass(frozen=True)
class Job:
    """One render to do: `level` (PREVIEW or FULL) of `view`, for camera `generation`."""

    level: str
    generation: int
    view: ViewRequest


def strip_cameras(camera: Camera, n_strips: int) -> list[tuple[int, Camera]]:
    """The camera cut into up to `n_strips` horizontal strips: (first row, strip camera) pairs
    whose images, stacked top to bottom, form the camera's image (principal point shifted
    up by the first row; the same rays pixel for pixel)."""
    if isinstance(n_strips, bool) or not isinstance(n_strips, int) or n_strips < 1:
        raise ValueError(f"n_strips must be an int >= 1, got {n_strips!r}")
    rows = math.ceil(camera.height / n_strips)
    strips = []
    for top in range(0, camera.height, rows):
        K = camera.K.clone()
        K[1, 2] = K[1, 2] - top
        height = min(rows, camera.height - top)
        strips.append((top, Camera(K, camera.viewmat, camera.width, height)))
    return strips


class ProgressiveRenderer:
    """Renders a client's view as the camera moves: preview while moving, refined when still,
    abandoning a render when the camera moves again.

    render: camera -> image [h,w,3] float in [0,1] (one strip); show: (image [H,W,3],
    level) -> None puts a finished image on the client. n_strips: strips per image (the
    chances to abandon it), or a function giving it per render. clock: seconds, monotonic.
    """

    def __init__(
        self,
        render: Callable[[Camera], np.ndarray],
        show: Callable[[np.ndarray, str], None],
        preview_side: int = 96,
        full_side: int = 384,
        settle_s: float = 0.25,
        n_strips: int | Callable[[], int] = 8,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        if not 1 <= preview_side <= full_side:
            raise ValueError(
                f"preview_side and full_side must satisfy 1 <= preview_side <= full_side, "
                f"got {preview_side} and {full_side}"
            )
        if not (math.isfinite(settle_s) and settle_s >= 0):
            raise ValueError(f"settle_s must be a finite number >= 0, got {settle_s!r}")
        self.render, self.show = render, show
        self.sides = {PREVIEW: preview_side, FULL: full_side}
        self.settle_s, self.n_strips, self.clock = settle_s, n_strips, clock
        self._lock = threading.Condition()
        self._view: ViewRequest | None = None
        self._generation = 0
        self._moved_at = -math.inf
        self._done: str | None = None  # the best level shown for the current generation
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.abandoned = 0  # renders given up because the camera moved
        self.completed = {PREVIEW: 0, FULL: 0}
        self.last_seconds = {PREVIEW: math.nan, FULL: math.nan}  # duration of the last render
        self.on_error = on_error
        self.last_error: Exception | None = None

    # ------------------------------------------------------------------------- requests

    def request(self, view: ViewRequest) -> None:
        """The client's camera moved to `view`: start over from a preview."""
        with self._lock:
            self._view = view
            self._generation += 1
            self._moved_at = self.clock()
            self._done = None
            self._lock.notify_all()

    def refresh(self) -> None:
        """The content changed (new weights, another output): render the current view again,
        refined at once since the camera is not moving."""
        with self._lock:
            self._generation += 1
            self._moved_at = -math.inf
            self._done = None
            self._lock.notify_all()

    @property
    def generation(self) -> int:
        """How many camera updates and refreshes there have been."""
        return self._generation

    # ------------------------------------------------------------------------- scheduling

    def next_job(self) -> Job | None:
        """What to render now: a preview of a new view, the refined image of a view that has
        been still for settle_s, or None (nothing to do yet)."""
        with self._lock:
            if self._view is None or self._done == FULL:
                return None
            if self._done is None and self.clock() - self._moved_at < self.settle_s:
                return Job(PREVIEW, self._generation, self._view)
            if self.clock() - self._moved_at >= self.settle_s:
                return Job(FULL, self._generation, self._view)
            return None

    def _wait_time(self) -> float | None:
        """Seconds until the refined render is due (None: wait for a request)."""
        if self._view is None or self._done == FULL:
            return None
        return max(0.0, self.settle_s - (self.clock() - self._moved_at))

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation and not self._stopped

    def run_job(self, job: Job) -> bool:
        """Renders `job` strip by strip and shows it; False if abandoned because the camera
        moved (or the content changed) before it finished."""
        start = self.clock()
        camera = job.view.camera(self.sides[job.level])
        image = np.zeros((camera.height, camera.width, 3), dtype=np.float32)
        n_strips = self.n_strips() if callable(self.n_strips) else self.n_strips
        for top, strip in strip_cameras(camera, n_strips):
            if not self._current(job.generation):
                self.abandoned += 1
                return False
            image[top : top + strip.height] = self.render(strip)
        with self._lock:
            if job.generation != self._generation or self._stopped:
                self.abandoned += 1
                return False
            self._done = job.level
        self.show(image, job.level)
        self.completed[job.level] += 1
        self.last_seconds[job.level] = self.clock() - start
        return True

    # ------------------------------------------------------------------------- thread

    def start(self) -> ProgressiveRenderer:
        """Runs the scheduling loop on a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="mp3d-render")
            self._thread.start()
        return self

    def stop(self) -> None:
        """Ends the loop (a render in progress stops at its next strip)."""
        with self._lock:
            self._stopped = True
            self._lock.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                job = self.next_job()
                if job is None:
                    self._lock.wait(timeout=self._wait_time())
                    continue
            try:
                self.run_job(job)
            except Exception as error:  # a failed render must not kill the client's loop
                self.failed(error)

    def failed(self, error: Exception) -> None:
        """A render raised: marks the view done (no retry loop) and reports the error."""
        with self._lock:
            self._done = FULL
        self.last_error = error
        if self.on_error is not None:
            self.on_error(error)
