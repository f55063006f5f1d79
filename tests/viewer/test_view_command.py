"""`mp3d view`: registered in the mp3d command, safe defaults in its help, and a file it cannot
show reported by name while the viewer serves the others."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from mp3d.cli import main
from tests.viewer.scenes import write_mesh

pytestmark = pytest.mark.usefixtures("one_thread")


def test_help_names_ssh_forwarding_and_the_local_default(capsys):
    assert main(["view", "--help"]) == 0
    text = capsys.readouterr().out
    assert "ssh -N -L 8080:127.0.0.1:8080" in text
    assert "default: 127.0.0.1" in text


def test_bad_port_and_no_paths(capsys):
    assert main(["view", "--port", "70000"]) == 2
    assert "port number 1..65535" in capsys.readouterr().err
    assert main(["view"]) == 2
    assert "give at least one PATH" in capsys.readouterr().err


def test_a_bad_file_is_reported_and_the_rest_served(tmp_path):
    good = write_mesh(tmp_path / "good.ply")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"this is not a PLY file")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "mp3d", "view", str(good), str(bad), "--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 60.0
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("viewer at"):
                break
        assert any(line.startswith("showing     mesh: good.ply") for line in lines), lines
        url = f"http://127.0.0.1:{port}"
        assert any(url in line for line in lines if line.startswith("viewer at")), lines
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read(2000).lower()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert f"{bad}: not a PLY file" in stderr
