"""The training loop as a library: early stopping, exact resume, artifacts, TensorBoard read-back, failures."""

import copy
import functools
import json
import math

import pytest
import torch

from gat.data.registry import load_dataset
from gat.errors import GATError
from gat.nn.model import GAT
from gat.training import checkpoints
from gat.training.config import TrainConfig
from gat.training.loop import inspect_model
from gat.training.selection import EarlyStopping
from gat.training.steps import (
    CapturedEvaluation,
    CapturedStep,
    build_model,
    build_optimizer,
    evaluate,
    evaluate_batch,
    full_batch_step,
    full_graph_evaluation,
    split_batch,
    train_step,
    training_batch,
    training_loss,
)
from gat.training.trainer import load_model, train


def synthetic_config(tmp_path, **overrides) -> TrainConfig:
    values = dict(
        dataset="synthetic",
        data_dir=str(tmp_path / "data"),
        runs_dir=str(tmp_path / "runs"),
        models_dir=str(tmp_path / "models"),
        epochs=30,
        checkpoint_freq=10,
        entropy_log_freq=10,
        device="cpu",
        quiet=True,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_receptive_field_step_has_the_whole_graphs_loss_and_gradient(num_layers):
    graph = load_dataset("synthetic", num_nodes=2000, average_degree=2, num_classes=3, num_features=20)
    graph.x = graph.x.double()
    torch.manual_seed(0)
    model = GAT(20, 3, heads=(2,) * num_layers, num_layers=num_layers, dropout=0.0).double()
    field, whole = training_batch(graph, num_layers), training_batch(graph)
    assert isinstance(field.edge_index, list) and len(field.edge_index) == num_layers  # a part of the graph
    assert sum(edges.shape[1] for edges in field.edge_index) < num_layers * graph.num_edges / 2
    gradients = []
    for batch in (field, whole):
        model.zero_grad()
        loss, _ = training_loss(model, batch)
        loss.backward()
        gradients.append([loss.detach(), *(parameter.grad.clone() for parameter in model.parameters())])
    for got, want in zip(*gradients, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluation_on_a_splits_receptive_field_has_the_whole_graphs_numbers(split):
    graph = load_dataset("synthetic", num_nodes=8000, average_degree=2, num_classes=3, num_features=20)
    graph.x = graph.x.double()
    torch.manual_seed(0)
    model = GAT(20, 3, heads=(2, 2), dropout=0.6).double()  # evaluation turns dropout off
    batch = split_batch(graph, split, num_layers=2)
    assert isinstance(batch.edge_index, list)  # a part of the graph
    assert sum(edges.shape[1] for edges in batch.edge_index) < graph.num_edges
    field, whole = evaluate_batch(model, batch, split), evaluate(model, graph, (split,))
    assert field.keys() == whole.keys() == {f"{split}_loss", f"{split}_accuracy"}
    assert field == pytest.approx(whole, rel=1e-12)
    getattr(graph, f"{split}_mask")[:] = False  # an empty split: no nodes to read, the whole graph's nan metrics
    empty = evaluate_batch(model, split_batch(graph, split, num_layers=2), split)
    assert all(math.isnan(value) for value in empty.values()) and empty.keys() == whole.keys()


def test_training_batch_is_the_whole_graph_when_the_receptive_field_is_most_of_it():
    graph = load_dataset("synthetic", num_nodes=300, average_degree=3, num_classes=3, num_features=20)
    graph.train_mask[:] = True
    graph.val_mask[:] = graph.test_mask[:] = False
    batch = training_batch(graph, num_layers=2)
    assert batch.edge_index is graph.edge_index and torch.equal(batch.targets, torch.arange(300))


@pytest.mark.parametrize("dropout", [0.0, 0.6])
def test_full_batch_step_takes_the_eager_steps(dropout, device):
    # On a GPU the step is replayed from a CUDA graph; it must compute what train_step computes, dropout draws
    # included (the capture's warm-up gives its draws back).
    graph = load_dataset("synthetic", num_nodes=400, average_degree=4, num_classes=3, num_features=20).to(device)
    config = TrainConfig(dropout=dropout, heads=(4, 1), hidden=4)
    runs = []
    eager_step = lambda *step_inputs: functools.partial(train_step, *step_inputs)  # noqa: E731
    for make_step in (eager_step, full_batch_step):
        torch.manual_seed(0)
        model = build_model(config, graph.num_features, graph.num_classes).to(device)
        step = make_step(model, build_optimizer(config, model), training_batch(graph, config.num_layers))
        runs.append([value for _ in range(8) for value in step()])
    assert isinstance(step, CapturedStep) == (device == "cuda")
    eager, replayed = runs
    assert replayed == pytest.approx(eager, rel=1e-5, abs=1e-6)
    assert len(set(eager[::2])) == 8  # the loss moves at every step


def test_full_graph_evaluation_follows_the_weights_as_they_change(device):
    # On a GPU the evaluation's forward pass is replayed from a CUDA graph: it must read the current weights.
    graph = load_dataset("synthetic", num_nodes=400, average_degree=4, num_classes=3, num_features=20).to(device)
    config = TrainConfig(heads=(4, 1), hidden=4)
    torch.manual_seed(0)
    model = build_model(config, graph.num_features, graph.num_classes).to(device)
    evaluation = full_graph_evaluation(model, graph)
    assert isinstance(evaluation, CapturedEvaluation) == (device == "cuda")
    step = full_batch_step(model, build_optimizer(config, model), training_batch(graph, config.num_layers))
    states, seen = [], []
    for _ in range(3):
        step()
        states.append(copy.deepcopy(model.state_dict()))
        seen.append(evaluation(("val", "test")))
        assert seen[-1] == pytest.approx(evaluate(model, graph, ("val", "test")), rel=1e-6)
    assert seen[0] != seen[-1]
    model.load_state_dict(states[0])  # in place, as a run restoring its best model does
    assert evaluation(("val", "test")) == pytest.approx(seen[0], rel=1e-6)


def test_early_stopping_follows_the_papers_rule():
    stopper = EarlyStopping(patience=2)
    assert "paper" in stopper.update(1, val_loss=1.0, val_accuracy=0.5)  # both improve: best
    assert "paper" not in stopper.update(2, val_loss=0.9, val_accuracy=0.4)  # loss improves only: resets patience
    assert stopper.epochs_without_improvement == 0 and stopper.best_epoch == 1
    assert "paper" not in stopper.update(3, val_loss=0.95, val_accuracy=0.45)  # neither: 1 bad epoch
    assert "paper" in stopper.update(4, val_loss=0.9, val_accuracy=0.5)  # ties on both count as best
    assert stopper.best_epoch == 4
    stopper.update(5, 1.0, 0.1)
    assert not stopper.should_stop
    stopper.update(6, 1.0, 0.1)
    assert stopper.should_stop


def test_a_nan_validation_loss_never_becomes_the_best():
    stopper = EarlyStopping(patience=3)
    stopper.update(1, val_loss=1.0, val_accuracy=0.5)
    stopper.update(2, val_loss=math.nan, val_accuracy=0.6)  # accuracy improves: patience resets, loss stays 1.0
    assert (stopper.best_val_loss, stopper.best_val_accuracy, stopper.epochs_without_improvement) == (1.0, 0.6, 0)
    assert "paper" in stopper.update(3, val_loss=0.9, val_accuracy=0.6)  # the loss criterion still works


# (val loss, val accuracy) per epoch from 1, and the epoch each rule keeps after each of them
SCORES = [(1.0, 0.5), (0.9, 0.4), (0.95, 0.6), (0.9, 0.6), (0.8, 0.55), (0.9, 0.6), (1.0, 0.7)]
CHOSEN = {
    "paper": [1, 1, 1, 4, 4, 4, 4],  # both at least their best so far: epoch 4 ties the best loss and accuracy
    "val-loss": [1, 2, 2, 2, 5, 5, 5],  # the first epoch of the lowest loss (epoch 4's tie does not move it)
    "val-acc": [1, 1, 3, 4, 4, 4, 7],  # highest accuracy, ties to the lower loss (epoch 6 ties epoch 4 on both)
    "last": [1, 2, 3, 4, 5, 6, 7],
}


@pytest.mark.parametrize("rule", list(CHOSEN))
def test_each_selection_rule_keeps_its_epoch_and_stopping_ignores_the_rule(rule):
    stopper, paper = EarlyStopping(patience=3, select=rule), EarlyStopping(patience=3)
    for epoch, (loss, accuracy) in enumerate(SCORES, start=1):
        chosen = stopper.update(epoch, loss, accuracy)
        paper.update(epoch, loss, accuracy)
        assert stopper.best_epoch == CHOSEN[rule][epoch - 1]
        assert (rule in chosen) == (stopper.best_epoch == epoch)
        assert stopper.epochs_without_improvement == paper.epochs_without_improvement
        assert {r: int(choice[0]) for r, choice in stopper.choices.items()} == {
            r: epochs[epoch - 1] for r, epochs in CHOSEN.items()
        }


def test_training_learns_and_writes_every_artifact(tmp_path, device):
    result = train(synthetic_config(tmp_path, epochs=60, device=device))
    assert result.metrics["test_accuracy"] > 0.8  # a homophilous SBM is easy
    assert result.checkpoint_path.is_file() and result.binary_path.is_file()
    assert result.run_id.startswith("synthetic_") and result.run_id in result.binary_path.name

    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["best_epoch"] == result.best_epoch
    assert [r["epoch"] for r in metrics["history"]] == list(range(1, result.epochs + 1))
    assert metrics["final"] == pytest.approx(result.metrics)
    assert metrics["config"]["heads"] == [8, 1]

    # the binary holds the restored best model: reloading it reproduces the reported metrics
    model, binary = load_model(result.binary_path)
    assert binary["dataset"] == "synthetic" and binary["environment"]["torch"] == torch.__version__
    best = result.history[result.best_epoch - 1]
    assert binary["metrics"]["val_accuracy"] == pytest.approx(best["val_accuracy"])
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, result.model.state_dict()[name].cpu())


def test_constant_attention_trains_and_its_saved_model_attends_uniformly(tmp_path):
    result = train(synthetic_config(tmp_path, epochs=60, layer="mean"))
    assert result.metrics["test_accuracy"] > 0.8  # a homophilous SBM needs no attention
    model, _ = load_model(result.binary_path)
    inspection = inspect_model(model, load_dataset("synthetic", root=tmp_path / "data"))
    degree = torch.bincount(inspection.edge_index[1]).float()
    for attention in inspection.attention:
        torch.testing.assert_close(attention, (1 / degree)[inspection.edge_index[1], None].expand_as(attention))


# Bit-for-bit on CPU only: on CUDA, the backward of the sparse input product (cuSPARSE) sums in a varying order,
# so two runs agree to float32 rounding (measured: 1e-7 relative after 13 epochs), not bit for bit.
@pytest.mark.parametrize("other_layout", [False, True], ids=["as-saved", "state-in-another-memory-layout"])
def test_resume_continues_bit_for_bit(tmp_path, other_layout):
    full = train(synthetic_config(tmp_path / "full", epochs=40, checkpoint_freq=7))
    first_half = train(synthetic_config(tmp_path / "split", epochs=20, checkpoint_freq=7))
    if other_layout:  # a checkpoint written when the weights were stored the other way (row- vs column-major)
        rewrite_checkpoint(first_half.checkpoint_path, lambda data: swap_layouts(data["optimizer"]["state"]))
    resumed = train(
        synthetic_config(tmp_path / "split", epochs=40), resume=first_half.checkpoint_path, override=("epochs",)
    )

    assert resumed.run_id == first_half.run_id
    strip = [{k: v for k, v in record.items() if k != "seconds"} for record in full.history]
    assert [{k: v for k, v in record.items() if k != "seconds"} for record in resumed.history] == strip
    for name, tensor in full.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    final_full = checkpoints.load(full.checkpoint_path, "checkpoint")["model"]
    final_resumed = checkpoints.load(resumed.checkpoint_path, "checkpoint")["model"]
    assert all(torch.equal(final_full[name], final_resumed[name]) for name in final_full)


def test_every_rules_test_score_is_that_of_the_model_it_keeps(tmp_path):
    scored = train(synthetic_config(tmp_path / "all", epochs=30, test_every_rule=True, select="val-acc"))
    assert set(scored.selections) == {"paper", "val-loss", "val-acc", "last"}
    assert scored.selections["last"]["epoch"] == scored.epochs == 30
    for rule, choice in scored.selections.items():
        alone = train(synthetic_config(tmp_path / rule, epochs=30, select=rule))
        assert [r["val_loss"] for r in alone.history] == [r["val_loss"] for r in scored.history]  # same training
        assert alone.best_epoch == choice["epoch"]
        assert choice["val_accuracy"] == scored.history[choice["epoch"] - 1]["val_accuracy"]
        assert choice["test_accuracy"] == pytest.approx(alone.metrics["test_accuracy"], abs=1e-6), rule
    assert scored.metrics["test_accuracy"] == pytest.approx(scored.selections["val-acc"]["test_accuracy"], abs=1e-6)
    assert "test_accuracy" not in alone.selections["paper"]  # scored only when asked


def test_resume_keeps_every_rules_choice_and_test_scores_bit_for_bit(tmp_path):
    config = functools.partial(synthetic_config, select="val-loss", test_every_rule=True, checkpoint_freq=7)
    full = train(config(tmp_path / "full", epochs=40))
    first_half = train(config(tmp_path / "split", epochs=20))
    resumed = train(config(tmp_path / "split", epochs=40), resume=first_half.checkpoint_path, override=("epochs",))
    assert resumed.selections == full.selections and resumed.best_epoch == full.best_epoch
    assert resumed.metrics == full.metrics


def test_a_checkpoint_without_selection_state_resumes_with_the_papers_rule(tmp_path):
    full = train(synthetic_config(tmp_path / "full", epochs=40, checkpoint_freq=7))
    first_half = train(synthetic_config(tmp_path / "split", epochs=20, checkpoint_freq=7))

    def as_written_before_selection_rules(data):
        del data["test_at_choice"], data["early_stopping"]["select"], data["early_stopping"]["choices"]
        del data["config"]["select"], data["config"]["test_every_rule"]

    rewrite_checkpoint(first_half.checkpoint_path, as_written_before_selection_rules)
    resumed = train(
        synthetic_config(tmp_path / "split", epochs=40), resume=first_half.checkpoint_path, override=("epochs",)
    )
    assert resumed.best_epoch == full.best_epoch and resumed.metrics == full.metrics
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in full.history]


def test_same_seed_same_numbers_and_different_seed_different_numbers(tmp_path):  # CPU: see above
    first = train(synthetic_config(tmp_path / "a", epochs=15))
    second = train(synthetic_config(tmp_path / "b", epochs=15))
    other = train(synthetic_config(tmp_path / "c", epochs=15, seed=1))
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert [r["train_loss"] for r in first.history] != [r["train_loss"] for r in other.history]
    assert first.run_id != second.run_id  # nothing overwrites another run's files


def test_tensorboard_events_equal_metrics_json(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(synthetic_config(tmp_path, epochs=20))
    events = EventAccumulator(str(result.run_dir), size_guidance={"scalars": 0, "histograms": 0}).Reload()
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for tag, key in [
        ("loss/train", "train_loss"),
        ("accuracy/val", "val_accuracy"),
        ("loss/val", "val_loss"),
        ("accuracy/train", "train_accuracy"),
        ("learning_rate", "learning_rate"),
    ]:
        logged = [(event.step, event.value) for event in events.Scalars(tag)]
        expected = [(record["epoch"], record[key]) for record in metrics["history"]]
        assert [step for step, _ in logged] == [step for step, _ in expected], tag
        for (_, got), (_, want) in zip(logged, expected, strict=True):
            assert got == pytest.approx(want, rel=1e-6), tag  # TensorBoard stores float32
    summary = EventAccumulator(str(result.run_dir / "summary"), size_guidance={"scalars": 0}).Reload()
    assert summary.Scalars("summary/accuracy_test")[0].value == pytest.approx(metrics["final"]["test_accuracy"])
    histograms = [tag for tag in events.Tags()["histograms"] if tag.startswith("uniformity/")]
    assert sorted(histograms) == sorted(
        [f"uniformity/entropy_layer0_head{h}" for h in range(8)] + ["uniformity/entropy_layer1_head0"]
    )
    assert [event.step for event in events.Histograms("uniformity/entropy_layer1_head0")] == [0, 10, 20]


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, device):
    config = synthetic_config(tmp_path, epochs=30, lr=1e30, weight_decay=0.0, checkpoint_freq=1, device=device)
    with pytest.raises(GATError, match="training loss became (nan|inf)") as error:
        train(config)
    assert "\n" not in str(error.value)
    checkpoint_files = list((tmp_path / "models" / "checkpoints").glob("*.pt"))
    assert len(checkpoint_files) == 1
    saved = checkpoints.load(checkpoint_files[0], "checkpoint")
    assert all(math.isfinite(record["train_loss"]) for record in saved["history"])
    assert all(torch.isfinite(tensor).all() for tensor in saved["model"].values())
    metrics_file = next((tmp_path / "runs").glob("*/metrics.json"))
    assert json.loads(metrics_file.read_text())["status"].startswith("failed")


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),  # truncated
        lambda path: path.write_bytes(b"\x00garbage" * 100),  # random bytes
        lambda path: torch.save({"format": "something-else"}, path),  # foreign torch file
        lambda path: path.write_bytes(b"\x80\x04cos\nsystem\n\x94."),  # a code-running pickle
    ],
    ids=["truncated", "garbage", "foreign", "malicious-pickle"],
)
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's remark on the hand-written pickle
def test_damaged_checkpoint_gives_one_line_error_naming_the_file(tmp_path, damage):
    result = train(synthetic_config(tmp_path, epochs=3))
    damage(result.checkpoint_path)
    with pytest.raises(GATError) as error:
        train(synthetic_config(tmp_path, epochs=6), resume=result.checkpoint_path)
    message = str(error.value)
    assert str(result.checkpoint_path) in message and "\n" not in message


def rewrite_checkpoint(path, change) -> None:
    data = checkpoints.load(path, "checkpoint")
    change(data)
    checkpoints.save(
        "checkpoint", {k: v for k, v in data.items() if k not in ("format", "format_version", "kind")}, path
    )


def swap_layouts(optimizer_state: dict) -> None:
    for state in optimizer_state.values():
        for name, value in state.items():
            if value.dim() == 2:
                state[name] = value.t().contiguous().t() if value.is_contiguous() else value.contiguous()


@pytest.mark.parametrize("part", ["model", "optimizer"])
def test_checkpoint_of_another_architecture_is_refused(tmp_path, part):
    result = train(synthetic_config(tmp_path, epochs=2))

    def damage(data):
        if part == "model":
            data["model"]["layers.0.linear.weight"] = torch.zeros(3, 3)
        else:  # torch's Optimizer.load_state_dict checks no shapes
            data["optimizer"]["state"][3]["exp_avg"] = torch.zeros(3, 3)

    rewrite_checkpoint(result.checkpoint_path, damage)
    with pytest.raises(GATError, match="does not match this model"):
        train(synthetic_config(tmp_path, epochs=4), resume=result.checkpoint_path, override=("epochs",))


def test_resuming_a_finished_run_is_refused_unless_epochs_grow(tmp_path):
    result = train(synthetic_config(tmp_path, epochs=3))
    for epochs in (3, 2):
        with pytest.raises(GATError, match="already finished its 3 epochs: pass --epochs greater than 3") as error:
            train(synthetic_config(tmp_path, epochs=epochs), resume=result.checkpoint_path, override=("epochs",))
        assert "\n" not in str(error.value)
    with pytest.raises(GATError, match="already finished its 3 epochs"):
        train(synthetic_config(tmp_path, epochs=50), resume=result.checkpoint_path)  # the run's own epochs: 3
    assert train(synthetic_config(tmp_path, epochs=5), resume=result.checkpoint_path, override=("epochs",)).epochs == 5


def test_resuming_an_early_stopped_run_is_refused(tmp_path):
    result = train(synthetic_config(tmp_path, epochs=200, patience=2))
    assert result.epochs < 200  # it stopped early
    with pytest.raises(GATError, match=f"already finished: it stopped early at epoch {result.epochs}"):
        train(synthetic_config(tmp_path, epochs=400), resume=result.checkpoint_path, override=("epochs",))


def test_invalid_config_values_are_refused():
    for bad in [
        dict(epochs=-1),
        dict(lr=0.0),
        dict(dropout=1.0),
        dict(dropout=-0.1),
        dict(dataset="imagenet"),
        dict(heads=(8, 8, 1)),
        dict(patience=0),
    ]:
        with pytest.raises(GATError):
            TrainConfig(**bad)
