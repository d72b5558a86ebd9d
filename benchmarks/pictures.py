"""How long the pictures take: what ``--visualize-after`` adds to a run, and the ``python -m visualization``
commands, each in a fresh process, in turn for a few rounds (medians and ranges).

    python benchmarks/pictures.py                   # trains the paper's Cora model first (seed 0, ~15 s)
    python benchmarks/pictures.py --model models/binaries/<run>.pt --rounds 3

``visualize-after`` times :func:`visualization.reports.visualize_run` in a process that has imported what a training
run has (torch, gat); the commands are timed whole, from the process's start to its exit. The ``-no-worker`` cases
make the t-SNE worker process fail, so that the maps are made in the drawing process: what the worker buys.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.entry import run_checked, run_main  # noqa: E402
from benchmarks.tsne import trained_binary  # noqa: E402
from gat.errors import OneLineErrorParser, bounded_int  # noqa: E402

# The worker process fails at once, so that the maps are made in the drawing process (visualization.maps)
WORKER_FAILS = 'MapWorker.command = (sys.executable, "-c", "raise SystemExit(3)")'
# visualize_run as the training script calls it, timed inside the process; argv: model, data dir, "worker" or "here"
VISUALIZE_AFTER = f"""
import sys, time
import torch, gat.training.trainer, matplotlib
matplotlib.use("Agg")
from visualization.maps import MapWorker
from visualization.reports import visualize_run
if sys.argv[3] == "here":
    {WORKER_FAILS}
start = time.perf_counter()
visualize_run(sys.argv[1], data_dir=sys.argv[2])
print(time.perf_counter() - start)
"""
# python -m visualization all, with the worker failing; argv: the command's
ALL_WITHOUT_WORKER = f"""
import sys
from visualization.maps import MapWorker
{WORKER_FAILS}
from visualization.cli import main
sys.exit(main(sys.argv[1:]))
"""
CASES = ("visualize-after", "visualize-after-no-worker", "embeddings", "entropy", "attention", "report", "all",
         "all-no-worker")  # fmt: skip


def seconds_of(case: str, model: str, data_dir: str, out: Path) -> float:
    """One timed run of ``case`` in a fresh process."""
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    if case.startswith("visualize-after"):
        where = "here" if case.endswith("no-worker") else "worker"
        command = [sys.executable, "-c", VISUALIZE_AFTER, model, data_dir, where]
        return float(run_checked(command, cwd=REPO, env=environment).stdout.split()[-1])
    arguments = [case.removesuffix("-no-worker"), "--model", model, "--data-dir", data_dir, "--out", str(out)]
    program = ["-c", ALL_WITHOUT_WORKER] if case == "all-no-worker" else ["-m", "visualization"]
    start = time.perf_counter()
    run_checked([sys.executable, *program, *arguments], cwd=REPO, env=environment)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a trained binary (default: train the paper's Cora model)")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--rounds", type=bounded_int(1), default=3, help="timed runs of each case, in turn")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--out", default=str(REPO / "runs" / "pictures-benchmark"), help="where the commands draw")
    args = parser.parse_args(argv)
    cases = [case.strip() for case in args.cases.split(",")]
    if unknown := [case for case in cases if case not in CASES]:
        parser.error(f"unknown case {unknown[0]!r}: choose from {', '.join(CASES)}")
    model = trained_binary(args.model, args.data_dir)
    seconds: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for case in cases:
            seconds.setdefault(case, []).append(seconds_of(case, model, args.data_dir, Path(args.out)))
    print(f"pictures of {Path(model).name}, {args.rounds} rounds in turn; load average {os.getloadavg()[0]:.1f}\n")
    print("| what | median seconds | range |")
    print("|---|---|---|")
    for case, times in seconds.items():
        print(f"| {case} | {statistics.median(times):.1f} | {min(times):.1f}–{max(times):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
