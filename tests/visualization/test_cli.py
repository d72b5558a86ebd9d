"""``python -m visualization`` and the training script's visualization hooks, as a user runs them."""

import functools
from pathlib import Path

import matplotlib.image
import pytest
from PIL import Image

from gat import cli as training_script
from tests.helpers import count_tsne_fits, record_map_requests
from visualization import cli, reports
from visualization.loading import load_trained

SIZE = (400, 300)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["dataset", "--dataset", "synthetic", "--format", "png", "svg"],
         ["synthetic_degrees.png", "synthetic_degrees.svg", "synthetic_summary.json"]),
        (["graph", "--dataset", "synthetic", "--layout", "fruchterman-reingold"],
         ["synthetic_graph_igraph_fruchterman-reingold.png"]),
        (["attention", "--node", "5", "--layer", "-1", "--head", "0"], ["attention_node5_layer1_head0.png"]),
        (["entropy"], ["entropy.png", "entropy_statistics.csv", "entropy_statistics.json"]),
        (["graph", "--dataset", "synthetic", "--layout", "drl", "--highlight", "3", "7"],
         ["synthetic_graph_igraph_drl.png"]),
        (["embeddings", "--max-nodes", "60", "--layer", "-1"], ["tsne_layer1.png"]),
    ],
)  # fmt: skip
def test_each_command_writes_images_of_the_requested_size(command, expected, synthetic_binary, tmp_path, capsys):
    model = (
        ["--model", str(synthetic_binary), "--data-dir", str(tmp_path)]
        if command[0] not in ("dataset", "graph")
        else []
    )
    code = cli.main([*command, *model, "--out", str(tmp_path), "--size", "x".join(map(str, SIZE))])  # in-process
    out, err = capsys.readouterr()
    assert code == 0, err
    written = [Path(line) for line in out.splitlines() if line.startswith(str(tmp_path))]
    assert [path.name for path in written] == expected
    for path in written:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert matplotlib.image.imread(path).shape[:2] == SIZE[::-1]
        if path.suffix == ".svg":
            assert "<svg" in path.read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["attention", "--layer", "2"], "error: layer 2 does not exist: the model has layers 0..1"),
        (["attention", "--layer", "1", "--head", "1"], "error: head 1 does not exist: layer 1 has only head 0"),
        (["embeddings", "--layer", "-3"], "error: layer -3 does not exist: the model has layers 0..1"),
        (["entropy", "--dataset", "cora"], "trained on synthetic, not cora: pass --dataset synthetic"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_1(arguments, message, synthetic_binary, tmp_path, capsys):
    code = cli.main([*arguments, "--model", str(synthetic_binary), "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 1 and message in error and error.count("\n") == 1


def test_missing_or_corrupt_model_is_one_line(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a model")
    for model in (tmp_path / "missing.pt", corrupt):
        assert cli.main(["entropy", "--model", str(model)]) == 1
        error = capsys.readouterr().err
        assert error.startswith(f"error: {model}: ") and error.count("\n") == 1
    assert cli.main(["entropy", "--models-dir", str(tmp_path)]) == 1  # no --model and nothing trained yet
    assert "no trained model in" in capsys.readouterr().err


def test_bad_flag_value_is_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["dataset", "--size", "big"])
    assert exit_info.value.code == 2 and "expected WIDTHxHEIGHT" in capsys.readouterr().err


def test_training_script_draws_before_and_after_training(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # t-SNE of 2000 nodes and 3 x 2 attention grids are slow and tested elsewhere: this test is about the wiring
    draw_embeddings = reports.embedding_figure
    monkeypatch.setattr(reports, "embedding_figure", lambda *args: draw_embeddings(*args[:4], max_nodes=60))
    monkeypatch.setattr(reports, "TOP_K", 1)
    monkeypatch.setattr(reports, "write_report", functools.partial(reports.write_report, max_nodes=60))
    folders = {
        flag: str(tmp_path / name)
        for flag, name in [
            ("--data-dir", "data"),
            ("--runs-dir", "runs"),
            ("--models-dir", "models"),
            ("--figures-dir", "fig"),
        ]
    }
    arguments = ["--dataset", "synthetic", "--epochs", "2", "--quiet", "--should_visualize", "--visualize-after"]
    assert training_script.main([*arguments, *[item for pair in folders.items() for item in pair]]) == 0  # fmt: skip

    drawn = {path.name for path in (tmp_path / "fig").iterdir()}
    assert drawn == {"synthetic_degrees.png", "synthetic_graph_igraph_kamada-kawai.png", "synthetic_summary.json"}
    (run_dir,) = (tmp_path / "runs").iterdir()
    figures = {path.name for path in (run_dir / "figures").iterdir()}
    assert {"entropy.png", "tsne_layer0-1.png", "entropy_statistics.csv"} <= figures
    assert sum(name.startswith("attention_node") for name in figures) == 2  # the top node, in every layer
    report = (run_dir / "report.html").read_text()  # written after the pictures: its gallery shows them
    assert report.count('<img alt="') == len([name for name in figures if name.endswith(".png")])
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0}).Reload()
    assert {"figures/entropy", "figures/tsne_layer0-1"} <= set(events.Tags()["images"])
    logged = events.Images("figures/entropy")[-1]  # the very file: one drawing serves both
    assert logged.encoded_image_string == (run_dir / "figures" / "entropy.png").read_bytes()
    with Image.open(run_dir / "figures" / "entropy.png") as saved:
        assert (logged.width, logged.height) == saved.size
    projector = (run_dir / "projector_config.pbtxt").read_text()
    assert "logits" in projector and "layer0_output" in projector and "metadata.tsv" in projector


def test_all_draws_every_picture_of_a_model(synthetic_binary, tmp_path, capsys):
    arguments = ["all", "--model", str(synthetic_binary), "--data-dir", str(tmp_path), "--out", str(tmp_path),
                 "--top-k", "1", "--max-nodes", "60", "--layout", "drl"]  # fmt: skip
    assert cli.main(arguments) == 0
    written = sorted(Path(line).name for line in capsys.readouterr().out.splitlines() if line.startswith(str(tmp_path)))
    top = reports.top_degree_nodes(load_trained(synthetic_binary, data_dir=tmp_path).graph, 1)[0]
    assert written == sorted([
        "synthetic_degrees.png", "synthetic_graph_igraph_drl.png", f"attention_node{top}_layer0_heads.png",
        f"attention_node{top}_layer1_heads.png", "entropy.png", "tsne_layer0-1.png", "synthetic_summary.json",
        "entropy_statistics.csv", "entropy_statistics.json",
    ])  # fmt: skip


def test_all_has_its_maps_made_by_the_worker(synthetic_binary, tmp_path, monkeypatch):
    """The worker is asked for exactly the maps `all` draws (the same layers, nodes and seed): none is made in this
    process."""
    requested = record_map_requests(monkeypatch)
    fitted = count_tsne_fits(monkeypatch)
    arguments = ["all", "--top-k", "1", "--max-nodes", "60", "--seed", "2", "--layout", "drl"]
    assert cli.main([*arguments, "--model", str(synthetic_binary), "--data-dir", str(tmp_path), "--out",
                     str(tmp_path)]) == 0  # fmt: skip
    assert fitted == [], "a map was made in this process"
    assert len(requested) == 2


@pytest.mark.parametrize(
    ("arguments", "suggestion"),
    [(["atention"], "did you mean 'attention'?"), (["graph", "--layout", "kamada"], "did you mean 'kamada-kawai'?"),
     (["dataset", "--dataset", "cra"], "did you mean 'cora'?")],
)  # fmt: skip
def test_a_mistyped_command_or_choice_suggests_the_closest(arguments, suggestion, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and suggestion in error and error.count("\n") == 1


def test_help_of_commands_without_a_model_does_not_mention_one(capsys):
    for command in ("dataset", "graph"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "model" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["entropy", "--help"])
    assert "--model" in capsys.readouterr().out
