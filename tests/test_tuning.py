"""The tuning benchmark chooses on validation only, checks its choice on other seeds, and resumes."""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks import tuning
from benchmarks.trained_runs import paired_difference


def record(seed: int, val: float, test: float) -> dict:
    return {"seed": seed, "val_score": val, "test_score": test}


def test_the_setting_of_highest_mean_validation_accuracy_is_chosen_and_ties_keep_the_papers():
    development = {
        "paper": [record(0, 0.80, 0.90), record(1, 0.80, 0.90)],
        "dropout-0.5": [record(0, 0.79, 0.95), record(1, 0.83, 0.95)],  # the best test, never looked at
        "hidden-16": [record(0, 0.82, 0.70), record(1, 0.82, 0.70)],
    }
    assert tuning.chosen_setting(development) == "hidden-16"
    tied = {"paper": development["paper"], "hidden-16": [record(0, 0.81, 0.70), record(1, 0.79, 0.70)]}
    assert tuning.chosen_setting(tied) == "paper"


def test_the_paired_difference_is_taken_seed_by_seed():
    difference, error, better, worse = paired_difference([0.84, 0.80, 0.83, 0.81], [0.83, 0.78, 0.83, 0.82])
    assert difference == pytest.approx(0.005)
    assert error == pytest.approx(statistics.stdev([0.01, 0.02, 0, -0.01]) / 2)
    assert (better, worse) == (2, 1)  # a tie counts as neither


def test_a_run_trains_the_setting_chooses_and_checks_on_the_held_out_seeds_then_resumes(tmp_path, capsys):
    argv = ["--datasets", "synthetic", "--settings", "dropout-0.5,hidden-16", "--dev-seeds", "2",
            "--held-out-seeds", "2", "--epochs", "5", "--output", str(tmp_path)]  # fmt: skip
    tuning.main(argv)
    out = capsys.readouterr().out
    runs = {
        setting: {int(path.stem.rsplit("seed", 1)[1]): json.loads(path.read_text())
                  for path in (tmp_path / setting / "runs").glob("*.json")}
        for setting in ("paper", "dropout-0.5", "hidden-16")
    }  # fmt: skip
    assert runs["dropout-0.5"][0]["config"]["dropout"] == 0.5 and runs["hidden-16"][0]["config"]["hidden"] == 16
    development = {setting: [seeds[0], seeds[1]] for setting, seeds in runs.items()}
    chosen = tuning.chosen_setting(development)
    for setting, seeds in runs.items():  # the held-out seeds 2 and 3: the paper's and the chosen setting only
        assert sorted(seeds) == ([0, 1, 2, 3] if setting in ("paper", chosen) else [0, 1])
    assert f"| synthetic | `{chosen}`" + (" (chosen)" if chosen != "paper" else "") in out
    assert f"synthetic: chosen on validation `{chosen}`; on held-out seeds 2–3" in out
    pairs = [(runs[chosen][seed]["test_score"], runs["paper"][seed]["test_score"]) for seed in (2, 3)]
    better, worse = sum(a > b for a, b in pairs), sum(a < b for a, b in pairs)
    assert f"(better on {better} seeds, worse on {worse})" in out
    modified = {path: path.stat().st_mtime_ns for path in tmp_path.glob("*/runs/*.json")}
    tuning.main(argv)
    assert capsys.readouterr().out == out  # read back, not trained again
    assert {path: path.stat().st_mtime_ns for path in tmp_path.glob("*/runs/*.json")} == modified
