"""Hyper-parameters chosen on validation: does one change from the paper's settings do better on seeds it was not
chosen on?

    python benchmarks/tuning.py --datasets cora,citeseer --output results/tuning

Per dataset, the paper's settings and each setting below (one change each) are trained on the development seeds
(0 to 9). The setting whose paper-rule models have the highest mean validation accuracy is chosen (the paper's
settings where none beats them), then the chosen setting and the paper's are trained on the held-out seeds (10 to
29). The summary gives each setting's validation and test accuracy on the development seeds, and for the chosen one
its test accuracy on the held-out seeds beside the paper's, with their paired difference (mean ± standard error):
a setting that won on validation by chance shows no difference there.

Every run is a ``gat.reproduce`` run with the setting on top of the dataset's preset (same seeds, same numbers as
its table for ``paper``), saved under ``<output>/<setting>/runs/`` the moment it ends (resumable, as reproduce).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: `gat` imports

from benchmarks.entry import run_main  # noqa: E402
from benchmarks.trained_runs import SETTINGS, add_run_arguments, one_graph_datasets, paired_difference  # noqa: E402
from gat.errors import OneLineErrorParser, bounded_int  # noqa: E402
from gat.reproduce.runner import Job, mean_and_spread, result_path, run_config, run_jobs  # noqa: E402
from gat.training.config import MAX_SEED  # noqa: E402


def train_setting(args, dataset: str, setting: str, seeds: range) -> list[dict]:
    """The runs of ``setting`` on ``dataset`` with ``seeds`` (trained unless saved), in seed order."""
    jobs = []
    for seed in seeds:
        config = run_config(args, dataset, "gat", seed, **SETTINGS[setting])
        jobs.append(Job(config, result_path(Path(args.output) / setting, config)))
    records = run_jobs(jobs, f"{dataset} {setting}")
    return [records[job.path] for job in jobs]


def chosen_setting(development: dict[str, list[dict]]) -> str:
    """The setting of highest mean validation accuracy over its runs (the first listed among ties: paper)."""
    return max(development, key=lambda setting: statistics.mean(r["val_score"] for r in development[setting]))


def scores(runs: list[dict], key: str) -> str:
    """``key`` (``val_score`` or ``test_score``) of ``runs``, mean ± std."""
    return mean_and_spread([r[key] for r in runs])


def summary(dataset: str, development: dict[str, list[dict]], held_out: dict[str, list[dict]]) -> tuple[str, str]:
    """Markdown rows for ``dataset``, and the sentence on its chosen setting."""
    chosen, seeds = chosen_setting(development), [r["seed"] for r in held_out["paper"]]
    rows = []
    for setting, runs in development.items():
        check = scores(held_out[setting], "test_score") if setting in held_out else "–"
        mark = " (chosen)" if setting == chosen else ""
        rows.append(f"| {dataset} | `{setting}`{mark} | {scores(runs, 'val_score')} | "
                    f"{scores(runs, 'test_score')} | {check} |")  # fmt: skip
    test_scores = ([r["test_score"] for r in held_out[setting]] for setting in (chosen, "paper"))
    difference, error, better, worse = paired_difference(*test_scores)
    verdict = (
        f"{dataset}: chosen on validation `{chosen}`; on held-out seeds {seeds[0]}–{seeds[-1]} it gives "
        f"{scores(held_out[chosen], 'test_score')} against the paper's "
        f"{scores(held_out['paper'], 'test_score')}, a paired difference of {difference:+.3f} ± {error:.3f} "
        f"(better on {better} seeds, worse on {worse})"
    )
    return "\n".join(rows), verdict


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cora,citeseer")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="the paper's and these (default: all)")
    parser.add_argument("--dev-seeds", type=bounded_int(1, MAX_SEED), default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--held-out-seeds", type=bounded_int(1, MAX_SEED), default=20, help="the next N (default 20)")
    parser.add_argument("--output", default="results/tuning")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    settings = ["paper", *(s for s in dict.fromkeys(args.settings.split(",")) if s != "paper")]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting {', '.join(unknown)}: choose from {', '.join(SETTINGS)}")
    development_seeds = range(args.dev_seeds)
    held_out_seeds = range(args.dev_seeds, args.dev_seeds + args.held_out_seeds)
    lines = ["| dataset | setting | val, dev seeds | test, dev seeds | test, held-out seeds |", "|---|---|---|---|---|"]
    verdicts = []
    for dataset in one_graph_datasets(args.datasets):  # a GATError is one line: run_main
        development = {s: train_setting(args, dataset, s, development_seeds) for s in settings}
        chosen = chosen_setting(development)
        held_out = {s: train_setting(args, dataset, s, held_out_seeds) for s in dict.fromkeys(["paper", chosen])}
        rows, verdict = summary(dataset, development, held_out)
        lines.append(rows)
        verdicts.append(verdict)
    print("\n".join([*lines, "", *verdicts]))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
