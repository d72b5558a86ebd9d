"""What a user sees in TensorBoard: read back with TensorBoard's own reader, and served by a real TensorBoard."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from gat.training import checkpoints
from gat.training.config import TrainConfig
from gat.training.loop import inspect_model
from gat.training.steps import build_model, load_graph
from gat.training.trainer import train
from visualization.degrees import degree_figure
from visualization.loading import load_trained
from visualization.reports import log_to_tensorboard
from visualization.style import figure_png

EPOCHS, EVERY = 6, 3
RUN_HPARAMS = {"dataset", "layer", "num_layers", "heads", "hidden", "dropout", "lr", "weight_decay",
               "skip_connection", "seed", "fanouts"}  # fmt: skip
SUMMARY_TAGS = ["summary/accuracy_test", "summary/accuracy_val", "summary/best_epoch", "summary/epochs",
                "summary/loss_test", "summary/training_seconds"]  # fmt: skip
SERVER_START_SECONDS = 90


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    """Two short runs that differ only in lr, the first with its pictures and projector embeddings logged."""
    root = tmp_path_factory.mktemp("tensorboard")
    results = []
    for lr in (0.005, 0.02):
        config = TrainConfig(dataset="synthetic", epochs=EPOCHS, entropy_log_freq=EVERY, lr=lr, run_name=f"lr{lr}",
                             device="cpu", quiet=True, data_dir=str(root / "data"), runs_dir=str(root / "runs"),
                             models_dir=str(root / "models"))  # fmt: skip
        results.append(train(config))
    trained = load_trained(results[0].binary_path, data_dir=root / "data")
    log_to_tensorboard(trained, {"synthetic_degrees": figure_png(degree_figure(trained.graph))})
    return root / "runs", results, trained


def events(path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0}).Reload()


def metrics_json(result) -> dict:
    return json.loads((result.run_dir / "metrics.json").read_text())


def kl_from_uniform_by_loops(attention: np.ndarray, targets: np.ndarray, num_nodes: int) -> np.ndarray:
    """Mean over nodes of KL(attention || uniform) = sum_j a_j log(a_j d), node by node: ``[heads]``."""
    per_node = np.zeros((num_nodes, attention.shape[1]))
    for node in range(num_nodes):
        incoming = attention[targets == node].astype(np.float64)
        terms = np.where(incoming > 0, incoming * np.log(np.maximum(incoming, 1e-300) * len(incoming)), 0.0)
        per_node[node] = terms.sum(axis=0)
    return per_node.mean(axis=0)


def test_run_name_and_the_summary_run_with_the_hparams_session(runs):
    from tensorboard.plugins.hparams import metadata

    runs_dir, results, _ = runs
    for result, lr in zip(results, (0.005, 0.02), strict=True):
        assert result.run_id.startswith(f"synthetic_lr{lr}_")
        summary = events(result.run_dir / "summary")
        content = summary.PluginTagToContent("hparams")
        assert metadata.EXPERIMENT_TAG not in content  # TensorBoard builds it, marking what differs between runs
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        assert set(start.hparams) == RUN_HPARAMS
        assert start.hparams["lr"].number_value == lr and start.hparams["heads"].string_value == "8,1"
        assert sorted(summary.Tags()["scalars"]) == SUMMARY_TAGS
        saved = metrics_json(result)
        expected = {"summary/accuracy_test": saved["final"]["test_accuracy"], "summary/best_epoch": saved["best_epoch"],
                    "summary/epochs": saved["epochs"], "summary/loss_test": saved["final"]["test_loss"]}  # fmt: skip
        for tag, value in expected.items():
            assert summary.Scalars(tag)[0].value == pytest.approx(value, rel=1e-6), tag
        main = events(result.run_dir)
        assert not any(tag.startswith("summary/") for tag in main.Tags()["scalars"])  # no lone dots among curves


def test_attention_kl_and_entropy_are_logged_from_the_untrained_model_on(runs):
    _, results, _ = runs
    result = results[0]
    logged = events(result.run_dir)
    heads = {0: 8, 1: 1}
    kl_tags = [f"uniformity/kl_layer{layer}_head{head}" for layer, count in heads.items() for head in range(count)]
    assert sorted(tag for tag in logged.Tags()["scalars"] if tag.startswith("uniformity/")) == sorted(kl_tags)
    for tag in kl_tags:
        assert [event.step for event in logged.Scalars(tag)] == [0, EVERY, 2 * EVERY]
        assert [e.step for e in logged.Histograms(tag.replace("kl_", "entropy_"))] == [0, EVERY, 2 * EVERY]

    # The values at step 0 (the seeded untrained model) and at the last epoch (the final checkpoint's weights)
    config = TrainConfig.from_dict(metrics_json(result)["config"])
    graph = load_graph(config)
    torch.manual_seed(config.seed)
    untrained = build_model(config, graph.num_features, graph.num_classes)
    final = build_model(config, graph.num_features, graph.num_classes)
    final.load_state_dict(checkpoints.load(result.checkpoint_path, "checkpoint")["model"])
    for step, model in ((0, untrained), (2 * EVERY, final)):
        inspection = inspect_model(model, graph)
        targets = inspection.edge_index[1].numpy()
        for layer, attention in enumerate(inspection.attention):
            expected = kl_from_uniform_by_loops(attention.numpy(), targets, graph.num_nodes)
            for head, value in enumerate(expected):
                (event,) = [e for e in logged.Scalars(f"uniformity/kl_layer{layer}_head{head}") if e.step == step]
                assert event.value == pytest.approx(value, rel=1e-4, abs=1e-7), (step, layer, head)


class TensorBoardServer:
    """``tensorboard --logdir`` on 127.0.0.1 and a free port, for the length of a ``with`` block."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir

    def __enter__(self) -> TensorBoardServer:
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(self.logdir), "--host", "127.0.0.1",
                   "--port", "0", "--load_fast", "false", "--reload_interval", "0"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stderr], daemon=True).start()
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "tensorboard exited before serving"
                continue
            if match := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return self
        self.process.kill()
        pytest.fail(f"tensorboard did not start serving within {SERVER_START_SECONDS} s")

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def get(self, route: str, **query: str):
        url = f"{self.url}/data/{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        return json.loads(body) if response.headers.get_content_type() == "application/json" else body.decode()

    def post(self, route: str, request: dict) -> dict:
        data = json.dumps(request).encode()
        post = urllib.request.Request(f"{self.url}/data/{route}", data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(post, timeout=60) as response:
            return json.loads(response.read())


@pytest.mark.slow
def test_a_real_tensorboard_server_shows_the_charts_hparams_and_projector(runs):
    runs_dir, results, trained = runs
    names = [result.run_id for result in results]
    with TensorBoardServer(runs_dir) as server:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while set(server.get("runs")) != {*names, *(f"{name}/summary" for name in names)}:
            assert time.monotonic() < deadline, server.get("runs")
            time.sleep(0.5)

        # Custom Scalars: train and val on one chart, the training curves first
        layout = server.get("plugin/custom_scalars/layout")["category"]
        assert "train vs val" in layout[0]["title"]
        charts = {chart["title"]: chart["multiline"]["tag"] for chart in layout[0]["chart"]}
        assert charts == {"loss": ["loss/train", "loss/val"], "accuracy": ["accuracy/train", "accuracy/val"]}
        assert [chart["title"] for chart in layout[1]["chart"]] == ["layer 0", "layer 1"]

        # HParams: only what defines a run, what differs first; the final numbers as metrics
        experiment = server.post("plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True})
        infos = experiment["hparamInfos"]
        assert {info["name"] for info in infos} == RUN_HPARAMS
        assert infos[0]["name"] == "lr" and infos[0]["differs"] and not any(i.get("differs") for i in infos[1:])
        assert [info["name"]["tag"] for info in experiment["metricInfos"]] == SUMMARY_TAGS
        request = {"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "startIndex": 0, "sliceSize": 10,
                   "colParams": [{"hparam": "lr"}, *({"metric": {"tag": tag}} for tag in SUMMARY_TAGS)]}  # fmt: skip
        groups = server.post("plugin/hparams/session_groups", request)["sessionGroups"]
        by_lr = {group["hparams"]["lr"]: group for group in groups}
        for result, lr in zip(results, (0.005, 0.02), strict=True):
            values = {value["name"]["tag"]: value["value"] for value in by_lr[lr]["metricValues"]}
            assert values["summary/accuracy_test"] == pytest.approx(result.metrics["test_accuracy"], rel=1e-6)
            assert values["summary/epochs"] == result.epochs

        # Scalars from step 0; the pictures; the projector's metadata columns
        kl = server.get("plugin/scalars/scalars", run=names[0], tag="uniformity/kl_layer0_head0")
        assert [step for _, step, _ in kl] == [0, EVERY, 2 * EVERY]
        assert "figures/synthetic_degrees" in server.get("plugin/images/tags")[names[0]]
        assert names[0] in server.get("plugin/projector/runs")
        embeddings = server.get("plugin/projector/info", run=names[0])["embeddings"]
        assert sorted(e["tensorName"].split(":")[0] for e in embeddings) == ["layer0_output", "logits"]
        logits = next(e for e in embeddings if e["tensorName"].startswith("logits"))
        assert logits["sprite"]["singleImageDim"] == [12, 12]
        table = server.get("plugin/projector/metadata", run=names[0], name=logits["tensorName"]).splitlines()
        assert table[0].split("\t") == ["node", "class", "split", "prediction", "correct", "degree"]
        rows = [line.split("\t") for line in table[1:]]
        assert len(rows) == trained.graph.num_nodes
        predicted = trained.inspection.logits.argmax(1)
        for node in (0, 7, trained.graph.num_nodes - 1):
            node_id, label, split, prediction, correct, _ = rows[node]
            assert (int(node_id), int(label), int(prediction)) == (node, trained.graph.y[node], predicted[node])
            assert correct == ("yes" if label == prediction else "no")
        assert {row[2] for row in rows} <= {"train", "val", "test", "none"} and "train" in {row[2] for row in rows}
