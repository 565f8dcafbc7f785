"""The environment the README installs: no torchvision, text stack importable, CLI light."""

import importlib.util
import subprocess
import sys


def test_torchvision_is_absent_and_transformers_imports():
    assert importlib.util.find_spec("torchvision") is None, "torchvision breaks transformers with the CPU torch"
    import transformers  # noqa: F401


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from typer.testing import CliRunner; from kgalign.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'torch_geometric', 'sentence_transformers', 'transformers', 'scipy') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_console_script_prints_version():
    out = subprocess.run([sys.executable, "-m", "kgalign.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip()
