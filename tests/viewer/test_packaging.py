"""The viewer ships inside mp3d: pyproject lists every package folder and maps mp3d.viewer
onto the top-level viewer/ folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib
    from setuptools import find_packages

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = set(find_packages(str(ROOT), include=["mp3d*"])) | {"mp3d.viewer"}
    missing = sorted(found - listed)
    assert not missing, (
        f"pyproject.toml [tool.setuptools] packages lacks {missing}: a regular "
        f"(non-editable) install would leave them out"
    )
    extra = sorted(listed - found)
    assert not extra, f"pyproject.toml lists packages that do not exist: {extra}"
    assert setup["package-dir"] == {"mp3d.viewer": "viewer"}


def test_viewer_imports_as_mp3d_viewer():
    import mp3d.viewer
    import mp3d.viewer.app
    import mp3d.viewer.cli

    assert callable(mp3d.viewer.cli.add_view_commands)
    assert (Path(mp3d.viewer.__file__).parent / "progressive.py").is_file()
