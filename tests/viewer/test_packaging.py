"""The viewer ships inside mp3d: pyproject lists every package folder and maps mp3d.viewer
onto the top-level viewer/ folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def committed_packages() -> set[str]:
    """The mp3d packages (folders with an __init__.py) that git tracks, so that folders
    still being written in this working tree do not count; the tree's own when this is not
    a git checkout."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "mp3d"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        from setuptools import find_packages

        return set(find_packages(str(ROOT), include=["mp3d*"]))
    return {
        str(Path(name).parent).replace("/", ".")
        for name in listing
        if Path(name).name == "__init__.py"
    }


def test_pyproject_lists_every_package():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = committed_packages() | {"mp3d.viewer"}
    missing = sorted(found - listed)
    assert not missing, (
        f"pyproject.toml [tool.setuptools] packages lacks {missing}: a regular "
        f"(non-editable) install would leave them out"
    )
    assert setup["package-dir"] == {"mp3d.viewer": "viewer"}
    for package in sorted(listed - {"mp3d.viewer"}):
        assert (ROOT / package.replace(".", "/") / "__init__.py").is_file(), (
            f"pyproject.toml lists {package}, which has no folder with an __init__.py"
        )


def test_viewer_imports_as_mp3d_viewer():
    import mp3d.viewer
    import mp3d.viewer.app
    import mp3d.viewer.cli

    assert callable(mp3d.viewer.cli.add_view_commands)
    assert (Path(mp3d.viewer.__file__).parent / "progressive.py").is_file()
