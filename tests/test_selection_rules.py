"""The selection-rules benchmark trains exactly as the library does, and each candidate keeps what it says."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest
import torch

from benchmarks import selection_rules
from benchmarks.entry import run_main
from gat.training.config import SELECTION_RULES
from gat.training.loop import run_epochs
from gat.training.presets import preset_config
from gat.training.steps import load_graph
from gat.training.trainer import train


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """Two 40-epoch runs on the synthetic graph, every candidate followed."""
    output = tmp_path_factory.mktemp("selection")
    selection_rules.main(["--datasets", "synthetic", "--seeds", "2", "--epochs", "40", "--output", str(output)])
    return output


def test_the_rules_of_select_keep_what_the_library_keeps(followed, tmp_path):
    for seed in (0, 1):
        config = preset_config(
            "synthetic", seed=seed, epochs=40, test_every_rule=True, quiet=True, tensorboard=False,
            runs_dir=str(tmp_path / "runs"), models_dir=str(tmp_path / "models"), data_dir=str(followed / "data"),
        )  # fmt: skip
        library = train(config).selections
        candidates = json.loads((followed / "paper" / "runs" / f"synthetic_seed{seed}.json").read_text())["candidates"]
        for rule in SELECTION_RULES:
            assert candidates[rule]["val_accuracy"] == pytest.approx(library[rule]["val_accuracy"], abs=1e-6)
            assert candidates[rule]["test_accuracy"] == pytest.approx(library[rule]["test_accuracy"], abs=1e-6)


def test_every_candidate_is_summarised_on_each_half_of_the_seeds_and_all(followed, capsys):
    selection_rules.main(["--datasets", "synthetic", "--seeds", "2", "--epochs", "40", "--output", str(followed)])
    lines = capsys.readouterr().out.splitlines()
    assert "done" not in "".join(lines)  # saved runs are read back, not trained again
    assert lines[0] == "| candidate | synthetic seeds 0–0 | synthetic seeds 1–1 | synthetic seeds 0–1 |"
    table, spread = lines[: lines.index("")], lines[lines.index("") + 1 :]
    rows = {line.strip("| ").split(" | ")[0]: line.strip("| ").split(" | ")[1:] for line in table[2:]}
    assert list(rows) == list(selection_rules.CANDIDATES)
    assert len(spread) == 1 and spread[0].startswith("synthetic, paper rule over 2 seeds: ")
    runs = [json.loads((followed / "paper" / "runs" / f"synthetic_seed{seed}.json").read_text()) for seed in (0, 1)]
    for name in selection_rules.RUN_CANDIDATES:
        accuracies = [run["candidates"][name]["test_accuracy"] for run in runs]
        cells = rows[name]
        assert cells[0] == f"{accuracies[0]:.3f} ± 0.000" and cells[1] == f"{accuracies[1]:.3f} ± 0.000"
        assert cells[2] == f"{statistics.mean(accuracies):.3f} ± {statistics.stdev(accuracies):.3f}"
    for name in selection_rules.RESTART_CANDIDATES:  # two seeds make no group of 3 or 5 runs
        assert rows[name] == ["–", "–", "–"]


def test_the_kept_probabilities_are_the_paper_rules_model(followed):
    for seed in (0, 1):
        run = json.loads((followed / "paper" / "runs" / f"synthetic_seed{seed}.json").read_text())
        for split in ("val", "test"):
            kept = run["kept"][split]
            probabilities = torch.tensor(kept["probabilities"])
            assert probabilities.sum(1) == pytest.approx(torch.ones(len(probabilities)), abs=1e-5)
            accuracy = (probabilities.argmax(1) == torch.tensor(kept["labels"])).double().mean().item()
            assert accuracy == pytest.approx(run["candidates"]["paper"][f"{split}_accuracy"], abs=1e-6)


def restart_run(seed: int, val_accuracy: float, val_probabilities: list, test_probabilities: list) -> dict:
    """A saved run as the summary reads it: two validation nodes and three test nodes, all of class 0."""
    test_accuracy = sum(row.index(max(row)) == 0 for row in test_probabilities) / len(test_probabilities)
    return {
        "dataset": "toy", "seed": seed,
        "candidates": {"paper": {"val_accuracy": val_accuracy, "test_accuracy": test_accuracy}},
        "kept": {"val": {"probabilities": val_probabilities, "labels": [0, 0]},
                 "test": {"probabilities": test_probabilities, "labels": [0, 0, 0]}},
    }  # fmt: skip


def test_best_of_keeps_the_restart_of_highest_validation_accuracy_then_lowest_loss():
    confident, unsure = [[0.9, 0.1], [0.9, 0.1]], [[0.6, 0.4], [0.6, 0.4]]
    right, wrong = [[0.8, 0.2]] * 3, [[0.2, 0.8]] * 3
    group = [restart_run(0, 0.5, confident, wrong), restart_run(1, 1.0, unsure, wrong),
             restart_run(2, 1.0, confident, right)]  # fmt: skip
    assert selection_rules.restart_score(group, "best-of-3") == 1.0  # seed 2: as accurate as 1, lower loss
    group[2]["candidates"]["paper"]["val_accuracy"] = 0.9
    assert selection_rules.restart_score(group, "best-of-3") == 0.0  # seed 1: the most accurate


def test_ensemble_of_averages_the_restarts_probabilities():
    val = [[0.9, 0.1], [0.9, 0.1]]
    # Each run is right on one test node only, the others wrong by a little; their average is right on all three.
    group = [
        restart_run(0, 1.0, val, [[0.9, 0.1], [0.45, 0.55], [0.45, 0.55]]),
        restart_run(1, 1.0, val, [[0.45, 0.55], [0.9, 0.1], [0.45, 0.55]]),
        restart_run(2, 1.0, val, [[0.45, 0.55], [0.45, 0.55], [0.9, 0.1]]),
    ]
    assert [run["candidates"]["paper"]["test_accuracy"] for run in group] == pytest.approx([1 / 3] * 3)
    assert selection_rules.restart_score(group, "ensemble-of-3") == 1.0


def test_restart_candidates_score_each_group_of_consecutive_seeds_inside_the_range():
    val = [[0.9, 0.1], [0.9, 0.1]]
    runs = [restart_run(seed, 1.0, val, [[0.9, 0.1]] * seed + [[0.1, 0.9]] * (3 - seed)) for seed in range(3)]
    runs += [restart_run(seed, 1.0, val, [[0.9, 0.1]] * 3) for seed in range(3, 10)]
    # Seeds 0-2 are right on 0, 1 and 2 of the three test nodes; averaged, only the first node is right.
    assert selection_rules.scores(runs, "toy", range(10), "ensemble-of-3") == pytest.approx([1 / 3, 1.0, 1.0])
    assert selection_rules.scores(runs, "toy", range(5, 10), "ensemble-of-3") == [1.0]  # seeds 6-8 only
    assert selection_rules.scores(runs, "toy", range(10), "best-of-5") == pytest.approx([0.0, 1.0])


def test_a_run_saved_with_other_settings_is_redone(followed, tmp_path, capsys):
    output = shutil.copytree(followed, tmp_path / "copy")
    selection_rules.main(["--datasets", "synthetic", "--seeds", "2", "--epochs", "20", "--output", str(output)])
    assert capsys.readouterr().out.count(": done") == 2
    for seed in (0, 1):
        assert json.loads((output / "paper" / "runs" / f"synthetic_seed{seed}.json").read_text())["epochs"] == 20


def test_a_setting_trains_its_change_into_its_own_folder_and_compares_seed_by_seed(followed, tmp_path, capsys):
    output = shutil.copytree(followed, tmp_path / "copy")
    argv = ["--datasets", "synthetic", "--seeds", "2", "--epochs", "40", "--output", str(output)]
    selection_rules.main([*argv, "--setting", "hidden-16", "--against", "paper"])
    out = capsys.readouterr().out
    assert out.count(": done") == 2  # the paper's runs beside them are read back
    runs, paper = ([json.loads((output / setting / "runs" / f"synthetic_seed{seed}.json").read_text())
                    for seed in (0, 1)] for setting in ("hidden-16", "paper"))  # fmt: skip
    changed = {key for key in paper[0]["config"] if runs[0]["config"][key] != paper[0]["config"][key]}
    assert changed == {"hidden", "runs_dir", "models_dir"} and runs[0]["config"]["hidden"] == 16  # copy: new dirs
    differences = [a["candidates"]["val-acc"]["test_accuracy"] - b["candidates"]["val-acc"]["test_accuracy"]
                   for a, b in zip(runs, paper, strict=True)]  # fmt: skip
    better, worse = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    error = abs(differences[0] - differences[1]) / 2  # the standard error of two differences
    expected = f"{statistics.mean(differences):+.3f} ± {error:.3f} ({better} better, {worse} worse)"
    assert "| candidate | synthetic: hidden-16 − paper |" in out and f"| val-acc | {expected} |" in out
    assert "| best-of-3 | – |" in out  # two seeds make no group of three


def test_a_saved_file_that_is_not_a_run_is_refused_in_one_line(tmp_path, capsys):
    runs = tmp_path / "paper" / "runs"
    runs.mkdir(parents=True)
    (runs / "synthetic_seed0.json").write_text(json.dumps({"dataset": "synthetic", "seed": "zero"}))
    code = run_main(selection_rules.main, ["--datasets", "synthetic", "--seeds", "1", "--output", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 1 and "synthetic_seed0.json (delete it to redo this run)" in error
    assert error.count("\n") == 1


def test_smoothed_validation_accuracy_is_the_mean_of_the_epochs_ending_there():
    accuracies = [0.1, 0.5, 0.3, 0.9, 0.2, 0.6, 0.4]
    scores = [{"val_loss": 1.0, "val_accuracy": value} for value in accuracies]
    smoothed = [epoch["val_accuracy"] for epoch in selection_rules.smoothed(scores)]
    assert smoothed == pytest.approx([0.1, 0.3, 0.3, 0.45, 0.4, 0.5, 0.48])


def test_choose_replays_each_rule():
    scores = [
        {"val_loss": 1.0, "val_accuracy": 0.5},
        {"val_loss": 0.8, "val_accuracy": 0.7},  # both best so far: the paper's rule keeps it
        {"val_loss": 0.7, "val_accuracy": 0.6},  # lowest loss
        {"val_loss": 0.9, "val_accuracy": 0.8},  # highest accuracy
        {"val_loss": 1.2, "val_accuracy": 0.4},
    ]
    chosen = {rule: selection_rules.choose(scores, rule) for rule in SELECTION_RULES}
    assert chosen == {"paper": 1, "val-loss": 2, "val-acc": 3, "last": 4}


def test_saved_probabilities_that_do_not_fit_their_labels_are_refused_in_one_line(followed, tmp_path, capsys):
    output = shutil.copytree(followed, tmp_path / "copy")
    path = output / "paper" / "runs" / "synthetic_seed0.json"
    run = json.loads(path.read_text())
    run["kept"]["test"]["labels"].pop()
    path.write_text(json.dumps(run))
    argv = ["--datasets", "synthetic", "--seeds", "2", "--epochs", "40", "--output", str(output)]
    code = run_main(selection_rules.main, argv)
    error = capsys.readouterr().err
    assert code == 1 and "'kept.test' must hold one row of class probabilities per label" in error
    assert error.count("\n") == 1


def test_averages_and_ensembles_of_one_model_are_that_model(tmp_path):
    config = preset_config(
        "synthetic", epochs=30, quiet=True, tensorboard=False,
        runs_dir=str(tmp_path / "runs"), models_dir=str(tmp_path / "models"), data_dir=str(tmp_path / "data"),
    )  # fmt: skip
    followed = selection_rules.FollowedRun(config, load_graph(config), torch.device("cpu"), None, "")
    run_epochs(followed, torch.device("cpu"))
    followed.chosen.extend([followed.best_state] * 10)  # the paper's model, ten times over
    candidates = followed.candidates()
    for name in ("average-3", "average-10", "ensemble-3", "ensemble-10"):
        assert candidates[name] == pytest.approx(candidates["paper"], abs=1e-6)


def test_spread_says_how_alike_the_seeds_models_are():
    val = [[0.9, 0.1], [0.9, 0.1]]
    runs = [
        restart_run(0, 1.0, val, [[0.9, 0.1], [0.2, 0.8], [0.2, 0.8]]),  # right on the first test node
        restart_run(1, 1.0, val, [[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]]),  # right on the first two
    ]
    assert selection_rules.spread(runs, "toy") == (
        "toy, paper rule over 2 seeds: 0.500 ± 0.236 (standard error 0.1667); means of 10 seeds: –; two runs' test "
        "predictions agree on 0.667 of the nodes; 0.333 of the test nodes are wrong in every run"
    )
