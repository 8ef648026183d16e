"""Every example block of README.md (fenced as ```sh example) runs as written, in a copy of the samples."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```sh example\n(.*?)^```", re.S | re.M)


def example_commands() -> list[str]:
    commands = []
    for block in BLOCK.findall((ROOT / "README.md").read_text()):
        commands += [ln.strip() for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    return commands


def test_readme_has_examples_for_every_command():
    used = {c.split()[1] for c in example_commands() if c.startswith("tfopt ")}
    assert used >= {"convert", "verify", "run", "sweep", "recipes", "analyze", "inspect", "bench", "export-c", "train"}


@pytest.mark.slow
def test_every_readme_example_runs_as_written(tmp_path):
    for folder in ("sample_models", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in example_commands():
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "out" / "mnist_cnn.int8.tflite").is_file()
    assert not list((tmp_path / "sample_models").glob("*.tflite"))  # examples write under out/ only
