"""Start-up contracts: --help is instant (no TensorFlow), every command is documented."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tfopt.cli import main

CHECK = (
    "import sys; from click.testing import CliRunner; from tfopt.cli import main; "
    "r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
    "heavy = [m for m in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization', 'ai_edge_litert') "
    "if m in sys.modules]; print(heavy)"
)


@pytest.mark.parametrize("args", [["--help"], ["convert", "--help"], ["verify", "--help"], ["run", "--help"],
                                  ["sweep", "--help"]])
def test_help_does_not_import_tensorflow(args):
    out = subprocess.run([sys.executable, "-c", CHECK.format(args=args)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


def test_every_command_has_help_with_a_docstring(cli):
    for path, cmd in _commands(main):
        assert cmd.help and len(cmd.help.strip()) > 20, f"{' '.join(path)} has no help text"
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage:" in result.stdout


def test_top_level_help_lists_exit_codes(cli):
    result = cli("--help")
    assert "Exit codes: 0 ok, 1 error, 2 usage or recipe error, 3 verification missed a threshold, 130 interrupted." in " ".join(
        result.stdout.split()
    )
