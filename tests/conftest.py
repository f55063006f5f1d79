"""Shared fixtures: real-data location and GPU skipping (test scenes: tests/ops/scenes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LEGO = SHARED_DATA / "lego"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Runs a module's tests on one torch thread, restoring the count afterwards. For tests
    of tiny models: on a 2-core machine busy with other work, two intra-op threads made such
    tests 5-30x slower than one (each small op waits on the other thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def lego_dir() -> Path:
    if not (LEGO / "transforms_train.json").is_file():
        pytest.skip(f"real data not found at {LEGO} (see shared/data/README.md)")
    return LEGO


@pytest.fixture(scope="session")
def tiny_demo_scene(tmp_path_factory) -> Path:
    """The built-in demo scene at 24x24 with a few views per split."""
    from mp3d.data.demo import write_demo_scene

    return write_demo_scene(
        tmp_path_factory.mktemp("demo") / "scene",
        n_train=4,
        n_val=2,
        n_test=2,
        resolution=24,
        progress=False,
    )
