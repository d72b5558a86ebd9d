"""The package layout is a checked contract: `lint-imports` (import-linter, configured in pyproject.toml) passes on
the code, and fails as soon as a lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: import-linter is in requirements.txt")
    # --no-cache: a cached import graph of another tree must never answer for this one
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}
    )


def test_the_code_keeps_its_layers() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


@pytest.mark.parametrize(
    "module, upward_import",
    [
        ("gat/data/graph.py", "import gat.training.trainer"),  # data must not know about training
        ("gat/nn/kernels/ops.py", "import gat.nn.model"),  # kernels must not know about the model
        ("gat/training/loop.py", "import gat.training.trainer"),  # the shared loop must not know its trainers
        ("gat/nn/reference.py", "import gat.nn.kernels.ops"),  # the reference stays plain PyTorch
        ("gat/training/steps.py", "import visualization.style"),  # the library must not import the pictures
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path: Path, module: str, upward_import: str) -> None:
    for folder in ("gat", "visualization"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / module, "a") as file:
        file.write(f"\n{upward_import}  # the mistake under test\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout


def test_every_public_name_is_what_its_module_defines_even_after_the_subpackages_load():
    # A subpackage is bound on its parent when imported: one named like an export (once gat.train) would shadow it.
    code = (
        "import importlib, gat\n"
        "for package in ('gat.data', 'gat.nn', 'gat.sampling', 'gat.training', 'gat.reproduce'):\n"
        "    importlib.import_module(package)\n"
        "from gat import *\n"
        "for name, module in gat._EXPORTS.items():\n"
        "    assert getattr(gat, name) is getattr(importlib.import_module(module), name), name\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
