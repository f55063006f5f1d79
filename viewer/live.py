"""Viewing a model while it trains (`mp3d nerf train ... --view`, `mp3d splat train ... --view`,
and any trainer built on mp3d.training.TrainingRun).

`LiveTraining` watches every TrainingRun of the process through mp3d.training.OBSERVERS:
every `every` steps (while a browser is connected) it asks the run for a snapshot, which the
trainer hands over as its checkpoint payload (not written to disk), rebuilds the model from it
and shows it in the Viewer (NeRF rendered on the server, Gaussians in the browser); after each
step it records loss and PSNR for the page's curves, and blocks while the page's pause button
is down (the run's wall-clock budget does not count the pause).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import numpy as np

from mp3d.viewer.layers import node_name

__all__ = ["LiveTraining", "live_view", "model_of_payload"]

CURVES = ("loss", "psnr")
PLOT_INTERVAL_S = 0.5  # the curves and the status line are sent at most this often


def model_of_payload(format_name: str, payload: dict):
    """A CPU copy of the model in a trainer's checkpoint payload ("mp3d.nerf": NeRFModel,
    "mp3d.splat": GaussianModel), or None for formats the viewer cannot draw."""
    if format_name == "mp3d.nerf":
        from mp3d.nerf.model import ModelSpec, NeRFModel

        model = NeRFModel(ModelSpec(**payload["spec"]))
        model.load_state_dict({k: v.detach().cpu() for k, v in payload["model"].items()})
        return model.eval()
    if format_name == "mp3d.splat":
        from mp3d.splat.checkpoint import gaussians_from_payload

        return gaussians_from_payload(payload).cpu().eval()
    return None


class LiveTraining:
    """Shows the model being trained in `viewer`, refreshed every `every` steps.

    Add it with `attach()` before training starts; `detach()` afterwards."""

    def __init__(self, viewer, every: int = 100) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.viewer, self.every = viewer, every
        self.only_when_watched = True  # no snapshots while no browser is connected
        self.history: dict[str, list[float]] = {"step": [], **{name: [] for name in CURVES}}
        self.layer = None
        self.snapshots = 0
        self.snapshot_seconds = 0.0  # spent rebuilding and showing models (slowdown)
        self.paused_seconds = 0.0
        self._resume = threading.Event()
        self._resume.set()
        self._last_snapshot_step: int | None = None
        self._run = None  # the TrainingRun being followed
        self._last_plot = 0.0
        self._unsupported: str | None = None
        self._build_controls()

    # ------------------------------------------------------------------------- controls

    def _build_controls(self) -> None:
        import viser.uplot  # noqa: F401  (the chart types)

        gui = self.viewer.server.gui
        with gui.add_folder("training"):
            self.status = gui.add_markdown("waiting for the first step")
            self.pause_button = gui.add_button("pause training")
            self.pause_button.on_click(lambda _: self.toggle_pause())
            empty = (np.zeros(1), np.zeros(1))
            self.charts = {
                name: gui.add_uplot(
                    data=empty,
                    series=({"label": "step"}, {"label": name, "stroke": colour, "width": 2}),
                    title=name,
                    scales={"x": {"time": False}},  # steps, not timestamps
                    aspect=2.0,
                )
                for name, colour in zip(CURVES, ("#d9480f", "#1c7ed6"))
            }

    @property
    def paused(self) -> bool:
        """Whether training waits for the page's resume button."""
        return not self._resume.is_set()

    def pause(self) -> None:
        """Holds training after its current step."""
        self._resume.clear()
        self.pause_button.label = "resume training"

    def resume(self) -> None:
        """Lets training go on."""
        self._resume.set()
        self.pause_button.label = "pause training"

    def toggle_pause(self) -> None:
        """pause() if running, else resume()."""
        self.resume() if self.paused else self.pause()

    # ------------------------------------------------------------------------- observer

    def attach(self) -> LiveTraining:
        """Starts watching the process's training runs; returns self."""
        from mp3d import training

        if self not in training.OBSERVERS:
            training.OBSERVERS.append(self)
        return self

    def detach(self) -> None:
        """Stops watching (and lets a paused run finish)."""
        from mp3d import training

        if self in training.OBSERVERS:
            training.OBSERVERS.remove(self)
        self.resume()

    def _follow(self, run) -> None:
        """Starts the history and the snapshot count over when another run begins."""
        if run is not self._run:
            self._run = run
            self._last_snapshot_step = None
            for values in self.history.values():
                values.clear()

    def wants_snapshot(self, run) -> bool:
        """A run's first step, then every `every` steps while someone is looking."""
        self._follow(run)
        if self._unsupported is not None:
            return False
        if self._last_snapshot_step is None:
            return True
        watched = not self.only_when_watched or bool(self.viewer.server.get_clients())
        return watched and run.step - self._last_snapshot_step >= self.every

    def snapshot(self, run, payload) -> None:
        """Shows the model of `payload` (the run's checkpoint payload at this step)."""
        start = time.perf_counter()
        self._last_snapshot_step = run.step
        model = model_of_payload(run.format_name, payload)
        if model is None:
            self._unsupported = f"{run.kind} models are not drawn yet: curves only"
            self.status.content = self._unsupported
            return
        if self.layer is None:
            self.layer = self._make_layer(run, model)
            self.viewer.add_layer(self.layer)
        else:
            self.layer.model = model
            if hasattr(self.layer, "step"):
                self.layer.step = run.step
            if hasattr(self.layer, "upload"):
                self.layer.upload()
            self.viewer.refresh()
        self.snapshots += 1
        self.snapshot_seconds += time.perf_counter() - start

    def _make_layer(self, run, model):
        name = node_name(f"training_{run.kind}", len(self.viewer.layers))
        path = run.checkpoint if run.checkpoint is not None else "training"
        if run.format_name == "mp3d.nerf":
            from mp3d.viewer.fields import FieldLayer

            return FieldLayer(
                path, name, model, f"NeRF being trained ({model.spec.kind})", run.step
            )
        from mp3d.viewer.splats import SplatLayer

        return SplatLayer(path, name, model)

    def step(self, run) -> None:
        """Records the step's scalars, updates the page now and then, waits while paused."""
        self._follow(run)
        self.history["step"].append(float(run.step))
        for name in CURVES:
            self.history[name].append(float(run.last.get(name, np.nan)))
        now = time.perf_counter()
        if now - self._last_plot >= PLOT_INTERVAL_S:
            self._last_plot = now
            self._plot(run)
        if self.paused:
            self.status.content = f"paused at step {run.step}"
            waited = time.perf_counter()
            self._resume.wait()
            pause = time.perf_counter() - waited
            self.paused_seconds += pause
            run.clock.started += pause  # a pause does not use up the wall-clock budget

    def _plot(self, run) -> None:
        steps = np.asarray(self.history["step"])
        for name, chart in self.charts.items():
            values = np.asarray(self.history[name])
            if np.isfinite(values).any():
                chart.data = (steps, values)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in run.last.items())
        self.status.content = f"step {run.step}: {shown}"


@contextlib.contextmanager
def live_view(
    host: str = "127.0.0.1", port: int = 8080, every: int = 100, keep_serving: bool = True
) -> Iterator[LiveTraining]:
    """A Viewer on host:port showing whatever trains inside the block (through LiveTraining,
    refreshed every `every` steps); with keep_serving, after the block ends normally, it goes
    on serving the trained model until Ctrl-C."""
    from mp3d.viewer.app import Viewer

    viewer = Viewer(host=host, port=port)
    live = LiveTraining(viewer, every).attach()
    print(f"viewer at   {viewer.url}   (the model is shown as it trains)", flush=True)
    try:
        yield live
        live.detach()
        if keep_serving:
            print(f"training done; the viewer stays at {viewer.url}: Ctrl-C to stop", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        live.detach()
        viewer.stop()
