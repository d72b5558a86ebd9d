"""The command lines answer --help, --version and flag errors without importing torch (or matplotlib, numpy...):
they import those only once the flags are valid."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

HEAVY = ("torch", "numpy", "scipy", "matplotlib", "sklearn", "igraph", "networkx", "openTSNE")

# Runs a module or script as `python -m` / `python script` would, then reports the heavy packages it imported.
RUNNER = """
import json, runpy, sys
target, sys.argv = sys.argv[1], sys.argv[1:]
code = 0
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code if isinstance(exit.code, int) else 1
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy}))
print("\\n" + json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def run_entry_point(target: str, *args: str) -> tuple[int, list[str], str]:
    """Exit code, the heavy packages imported, and stdout+stderr of ``target`` (a module or a script) run with
    ``args``."""
    runner = RUNNER.format(heavy=json.dumps(HEAVY))
    done = subprocess.run([sys.executable, "-c", runner, target, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)  # fmt: skip
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["heavy"], done.stdout + done.stderr


def assert_answers_without_torch(target: str, args: list[str], code: int, says: str) -> None:
    """``target`` run with ``args`` exits with ``code``, prints ``says`` and imports none of HEAVY."""
    exit_code, heavy, output = run_entry_point(target, *args)
    assert exit_code == code, output
    assert says in output
    assert heavy == [], f"{' '.join(args)} imported {heavy}"


TRAINING = ["gat", str(REPO / "training_script.py")]


@pytest.mark.slow
@pytest.mark.parametrize("target", TRAINING)
@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--help"], 0, "--threads"),
        (["--version"], 0, "gat 0.1.0 (torch "),
        (["--dataset", "nope"], 2, "invalid choice"),
        (["--epochs", "ten"], 2, "invalid int value"),
        (["--threads", "0"], 2, "--threads: must be in [1, 1024], got 0"),
        (["--heads", "8,1", "--num-layers", "3"], 2, "heads needs one count per layer"),
    ],
)
def test_training_cli_answers_without_torch(target, args, code, says):
    assert_answers_without_torch(target, args, code, says)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--help"], 0, "embeddings"),
        (["embeddings", "--help"], 0, "--threads"),
        (["graph", "--layout", "nope"], 2, "invalid choice"),
        (["attention", "--size", "big"], 2, "WIDTHxHEIGHT"),
        (["entropy", "--threads", "0"], 2, "--threads: must be in [1, 1024], got 0"),
    ],
)
def test_visualization_cli_answers_without_torch(args, code, says):
    assert_answers_without_torch("visualization", args, code, says)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--help"], 0, "--study"),
        (["--layers", "bogus"], 2, "unknown layer bogus"),
        (["--seeds", "0"], 2, "--seeds: must be in [1, 10000], got 0"),
        (["--quick"], 2, "--quick belongs to --study attention"),
    ],
)
def test_reproduce_cli_answers_without_torch(args, code, says):
    assert_answers_without_torch("gat.reproduce", args, code, says)


@pytest.mark.slow
def test_the_runner_sees_heavy_imports(tmp_path):
    """The checks above can fail: a command that trains does import torch."""
    folders = [f"--{name}-dir={tmp_path / name}" for name in ("data", "runs", "models")]
    exit_code, heavy, output = run_entry_point("gat", "--dataset", "synthetic", "--epochs", "1", "--quiet", *folders)
    assert exit_code == 0, output
    assert "torch" in heavy
