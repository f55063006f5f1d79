"""Training under torchrun with 2 processes (gloo, CPU): the ranks end with identical
parameters, the loss falls, and 2 processes with half the batch each match 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("worker.py")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from mp3d.data.demo import write_demo_scene

    return write_demo_scene(
        tmp_path_factory.mktemp("scene") / "demo",
        n_train=8,
        n_val=1,
        n_test=1,
        resolution=16,
        progress=False,
    )


def _torchrun(nproc: int, kind: str, scene: Path, out: Path, steps: int, batch: int) -> list:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(WORKER),
        kind,
        str(scene),
        str(out),
        str(steps),
        str(batch),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(nproc)]


def _same_parameters(results: list) -> None:
    first = results[0]["parameters"]
    for other in results[1:]:
        assert other["parameters"].keys() == first.keys()
        for name, value in first.items():
            torch.testing.assert_close(
                other["parameters"][name],
                value,
                rtol=0,
                atol=0,
                msg=f"{name} differs between ranks",
            )


@pytest.mark.slow
def test_nerf_ranks_stay_identical_and_match_one_process(scene, tmp_path):
    two = _torchrun(2, "nerf", scene, tmp_path / "two", steps=60, batch=256)
    assert [r["world_size"] for r in two] == [2, 2]
    _same_parameters(two)
    assert two[0]["after"] > two[0]["before"] + 3.0, two[0]
    assert (tmp_path / "two" / "run" / "checkpoint.pt").is_file()
    one = _torchrun(1, "nerf", scene, tmp_path / "one", steps=60, batch=512)
    assert abs(one[0]["after"] - two[0]["after"]) < 2.0, (one[0]["after"], two[0]["after"])


@pytest.mark.slow
def test_splat_ranks_densify_alike_and_match_one_process(scene, tmp_path):
    two = _torchrun(2, "splat", scene, tmp_path / "two", steps=40, batch=0)
    _same_parameters(two)  # the same Gaussians, so every rank cloned, split and pruned alike
    stats = two[0]["stats"]
    assert stats["densifications"] > 0, stats
    assert two[0]["after"] > two[0]["before"] + 2.0, two[0]
    one = _torchrun(1, "splat", scene, tmp_path / "one", steps=40, batch=0)
    assert abs(one[0]["after"] - two[0]["after"]) < 3.0, (one[0]["after"], two[0]["after"])
