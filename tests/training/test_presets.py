"""Per-dataset presets, the --layer choice, and a GATv2 model that survives a save/load round trip."""

import pytest
import torch

from gat.cli import DEFAULTS, build_parser, config_from_args, given_fields
from gat.data.registry import dataset_names
from gat.nn.layers import GATLayer, GATv2Layer
from gat.nn.model import GAT
from gat.training.presets import preset_config
from tests.helpers import random_graph


def config_from(*argv: str):
    return config_from_args(build_parser().parse_args(list(argv)))


def test_pubmed_preset_is_the_papers():
    config = preset_config("pubmed")
    assert (config.heads, config.lr, config.weight_decay) == ((8, 8), 0.01, 0.001)
    assert (config.hidden, config.dropout, config.patience) == (DEFAULTS.hidden, DEFAULTS.dropout, DEFAULTS.patience)


def test_ppi_preset_is_the_papers_inductive_model():
    config = preset_config("ppi")
    assert (config.num_layers, config.hidden, config.heads) == (3, 256, (4, 4, 6))
    assert (config.dropout, config.weight_decay, config.skip_connection, config.lr) == (0.0, 0.0, True, 0.005)


def test_cora_and_citeseer_use_the_defaults():
    for dataset in ("cora", "citeseer"):
        assert config_from("--dataset", dataset) == preset_config(dataset) == DEFAULTS.__class__(dataset=dataset)


def test_flags_given_explicitly_win_over_the_preset():
    config = config_from("--dataset", "pubmed", "--lr", "0.02", "--heads", "4,2")
    assert (config.lr, config.heads, config.weight_decay) == (0.02, (4, 2), 0.001)
    assert config_from("--dataset", "ppi", "--no-skip-connection").skip_connection is False
    assert config_from("--dataset", "cora", "--skip-connection").skip_connection is True


def test_a_new_depth_without_heads_gets_eight_heads_per_hidden_layer():
    assert config_from("--num-layers", "3").heads == (8, 8, 1)
    assert config_from("--dataset", "ppi", "--num-layers", "3").heads == (4, 4, 6)


def test_pytorch_gat_aliases_still_work():
    config = config_from("--num_of_epochs", "7", "--patience_period", "3", "--force_cpu")
    assert (config.epochs, config.patience, config.device) == (7, 3, "cpu")


def test_help_shows_every_preset(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "pubmed     --heads 8,8 --lr 0.01 --weight-decay 0.001" in text
    assert all(f"  {dataset} " in text for dataset in dataset_names())


def test_layer_flag_and_bad_values(capsys):
    assert config_from("--layer", "gatv2").layer == "gatv2"
    assert config_from("--layer", "mean").layer == "mean"
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--layer", "gcn"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'gcn'" in capsys.readouterr().err


def test_select_flag_chooses_the_rule_and_refuses_others(capsys):
    assert config_from().select == "paper"
    assert config_from("--select", "val-acc").select == "val-acc"
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--select", "test-acc"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'test-acc'" in capsys.readouterr().err


def test_model_builds_the_chosen_layer():
    assert all(isinstance(layer, GATLayer) for layer in GAT(5, 3).layers)
    model = GAT(5, 3, layer="gatv2").eval()
    assert all(isinstance(layer, GATv2Layer) for layer in model.layers)
    assert model(torch.randn(10, 5), random_graph(10, 30, seed=0)).shape == (10, 3)
    with pytest.raises(ValueError, match="unknown layer 'gcn'"):
        GAT(5, 3, layer="gcn")


def test_load_model_rebuilds_a_gatv2_model(tmp_path, capsys):
    from gat.training.loop import inspect_model
    from gat.training.steps import load_graph
    from gat.training.trainer import load_model, train

    folders = {name: str(tmp_path / name) for name in ("data_dir", "runs_dir", "models_dir")}
    config = preset_config("synthetic", layer="gatv2", epochs=2, tensorboard=False, **folders)
    result = train(config)
    assert "model  GATv2 8x8 -> 1x" in capsys.readouterr().out
    model, data = load_model(result.binary_path)
    assert data["config"]["layer"] == "gatv2" and isinstance(model.layers[0], GATv2Layer)
    graph = load_graph(config)
    torch.testing.assert_close(inspect_model(model, graph).logits, inspect_model(result.model, graph).logits)


def test_the_parsed_flags_are_exactly_the_settings_given():
    """One parse serves the presets and --resume: a setting typed at its default value is still given (and so
    must match a resumed checkpoint), one not typed is absent (and so the preset fills it)."""
    assert given_fields(build_parser().parse_args([])) == {}
    parsed = build_parser().parse_args(["--seed", "0", "--force_cpu", "--no-tensorboard", "--seeds", "3"])
    assert given_fields(parsed) == {"seed": 0, "device": "cpu", "tensorboard": False}
    assert parsed.seeds == 3 and parsed.resume is None and parsed.visualize_after is False
