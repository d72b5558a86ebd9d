"""``pip install .`` gives working commands outside the repository.

The fresh virtual environment borrows this interpreter's installed packages (a ``.pth`` file naming its
site-packages) so nothing is downloaded; only the project itself is installed into it, from a copy of the
repository, with ``pip install --no-deps --no-build-isolation``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO

# Top-level folders that are outputs, caches or environments, not the project (gat/data is the project).
NOT_THE_PROJECT = {"data", "runs", "models", "figures", "build", "dist", ".venv", ".git"}


def outside_the_project(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == REPO
    return {name for name in names if (top and name in NOT_THE_PROJECT) or name.endswith(".egg-info")
            or name == "__pycache__"}  # fmt: skip


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_pip_install_gives_the_console_scripts_and_python_m_gat(tmp_path):
    source = tmp_path / "source"  # building writes build/ and *.egg-info: not into the working tree
    shutil.copytree(REPO, source, ignore=outside_the_project)
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site_packages = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             tmp_path).stdout.strip())  # fmt: skip
    (site_packages / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")

    install = run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                   str(source)], tmp_path)  # fmt: skip
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = run([str(python), "-c", "import gat, visualization; print(gat.__file__, visualization.__file__)"],
                  elsewhere)  # fmt: skip
    assert located.returncode == 0, located.stderr
    assert all(Path(path).is_relative_to(site_packages) for path in located.stdout.split())  # the installed copy

    for command in (["gat-train", "--help"], ["gat-viz", "--help"], ["gat-reproduce", "--help"]):
        result = run([str(environment / "bin" / command[0]), *command[1:]], elsewhere)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith("usage:"), command
    assert "--should-visualize" in run([str(environment / "bin" / "gat-train"), "--help"], elsewhere).stdout
    module = run([str(python), "-m", "gat", "--help"], elsewhere)
    assert module.returncode == 0 and "--dataset" in module.stdout, module.stderr
    assert sys.executable != str(python)
