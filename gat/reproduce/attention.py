"""``python -m gat.reproduce --study attention``: where does learned attention beat an average over neighbours?

GAT, GATv2 and the constant-attention baseline (``mean``) are trained, ``--seeds`` runs each (default 5), on
generated graphs (`gat.data.sbm`) with class-dependent Gaussian features:

* a stochastic block model at each edge homophily of `HOMOPHILY` (the fraction of edges joining two nodes of one
  class; 0.2 is a random graph with 5 classes), from strongly heterophilous to strongly homophilous;
* the noisy-neighbours graph: every node has 3 same-class neighbours with clean features among 12 or more whose
  features are pure noise.

Each run is one `gat.reproduce.runner.run` of the paper table's runner (an atomic JSON per run, resumable, a progress
bar): test accuracy, per attention layer the KL divergence from uniform attention (mean over nodes and heads) and
the share of neighbour attention on same-class neighbours next to the share uniform attention gives. Then
``<output>/attention/attention.md`` gets the table (mean ± std over seeds) and ``attention.png`` the figure:
accuracy and KL against homophily, one line per model (error bars: std over seeds), and the noisy-neighbours
accuracies. Every setting uses the Cora architecture (8 heads x 8 hidden features, dropout 0.6) with lr 0.01 and at
most `EPOCHS` epochs; ``--quick`` shrinks graphs, seeds and epochs to a test-sized run.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gat.data import registry
from gat.data.registry import Dataset, register_dataset
from gat.data.sbm import load_noisy_neighbours, load_sbm
from gat.io import atomic_write, save_text
from gat.reproduce.runner import STUDY_SCHEMA, Job, mean_and_std, result_path, run_config, run_jobs

HOMOPHILY = (0.1, 0.3, 0.5, 0.7, 0.9)
EPOCHS = 500
TRAINING = {"lr": 0.01}  # on top of the Cora preset: early stopping ends most runs well before EPOCHS
SBM = {"num_nodes": 600, "num_classes": 5, "average_degree": 8.0, "num_features": 50, "noise": 1.5}
NOISY = {"num_nodes": 600, "num_classes": 5, "informative": 3, "noisy": 12, "clean_fraction": 0.3,
         "num_features": 50, "noise": 1.0, "noise_scale": 1.0}  # fmt: skip
# --quick: what the end-to-end test runs in seconds
QUICK_HOMOPHILY = (0.2, 0.8)
QUICK_EPOCHS = 5
QUICK_SIZE = {"num_nodes": 100, "average_degree": 4.0}
QUICK_NOISY_SIZE = {"num_nodes": 100, "informative": 2, "noisy": 4}
NOISY_NAME = "noisy-neighbours"


def settings(quick: bool) -> dict[str, tuple]:
    """Dataset name -> (loader, generator settings) of every graph the study trains on, in table order."""
    sbm = {**SBM, **QUICK_SIZE} if quick else SBM
    noisy = {**NOISY, **QUICK_NOISY_SIZE} if quick else NOISY
    graphs = {f"sbm-h{h:.2f}": (load_sbm, {**sbm, "homophily": h}) for h in (QUICK_HOMOPHILY if quick else HOMOPHILY)}
    return {**graphs, NOISY_NAME: (load_noisy_neighbours, noisy)}


@contextmanager
def registered(graphs: dict[str, tuple]) -> Iterator[None]:
    """The study's graphs as registry datasets for the duration of the block (training finds graphs by name)."""
    saved = dict(registry.DATASETS)
    for name, (load, options) in graphs.items():
        register_dataset(Dataset(name, functools.partial(load, **options), description=f"attention study: {options}"))
    try:
        yield
    finally:
        registry.DATASETS.clear()
        registry.DATASETS.update(saved)


def study(args, layers: list[str], argv: list[str] | None) -> int:
    """Run what is missing of the study, then write its table and figure and print the table; the exit code."""
    output = Path(args.output) / "attention"
    graphs = settings(args.quick)
    epochs = QUICK_EPOCHS if args.quick else EPOCHS
    with registered(graphs):
        jobs = []
        for name, (_, options) in graphs.items():
            for layer in layers:
                for seed in range(args.seeds):
                    config = run_config(args, name, layer, seed, epochs=epochs, **TRAINING)
                    jobs.append(Job(config, result_path(output, config), {"dataset": name, **options}))
        records = list(run_jobs(jobs, "attention study", schema=STUDY_SCHEMA).values())
    command = " ".join(["python -m gat.reproduce", *(argv if argv is not None else sys.argv[1:])])
    text = study_markdown(records, list(graphs), layers, command)
    save_text(text, output / "attention.md")
    draw(records, list(graphs), layers, output / "attention.png")
    print(text)
    print(f"wrote {output / 'attention.md'} and {output / 'attention.png'}")
    return 0


def summary(records: list[dict], dataset: str, layer: str) -> dict[str, tuple[float, float]] | None:
    """Mean and std over seeds of one graph and model: test accuracy, edge homophily and, per attention layer
    ``i``, ``kl<i>``, ``same<i>`` (share of neighbour attention on same-class neighbours) and ``uniform<i>``."""
    rows = [r for r in records if r["dataset"] == dataset and r["layer"] == layer]
    if not rows:
        return None
    stats = {"accuracy": mean_and_std([r["test_score"] for r in rows]),
             "homophily": mean_and_std([r["edge_homophily"] for r in rows])}  # fmt: skip
    for index in range(len(rows[0]["entropy"])):
        stats[f"kl{index}"] = mean_and_std([r["entropy"][index]["kl"] for r in rows])
        stats[f"same{index}"] = mean_and_std([r["classes"][index]["same_class_share"] for r in rows])
        stats[f"uniform{index}"] = mean_and_std([r["classes"][index]["uniform_same_class_share"] for r in rows])
    stats["runs"] = (len(rows), 0.0)
    return stats


def study_markdown(records: list[dict], datasets: list[str], layers: list[str], command: str) -> str:
    """The study's table: one row per graph and model, mean ± std over seeds."""
    lines = [
        "# Where attention matters",
        "",
        f"`{command}`. Test accuracy, mean ± std over seeds; KL = the mean divergence of each node's attention from "
        "uniform (nats, over nodes and heads); same-class = the mean share of a node's neighbour attention on "
        "neighbours of its class, learned (uniform attention's in brackets). Layer 0 is the hidden layer (8 heads), "
        "layer 1 the output layer.",
        "",
        "| graph | edge homophily | model | runs | test accuracy | KL layer 0 | KL layer 1 | same-class layer 0 | "
        "same-class layer 1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for layer in layers:
            stats = summary(records, dataset, layer)
            if stats is None:
                continue
            same = [
                f"{stats[f'same{i}'][0]:.3f} ({stats[f'uniform{i}'][0]:.3f})" for i in (0, 1) if f"same{i}" in stats
            ]
            kl = [f"{stats[f'kl{i}'][0]:.3f}" for i in (0, 1) if f"kl{i}" in stats]
            lines.append(
                f"| {dataset} | {stats['homophily'][0]:.3f} | {layer} | {stats['runs'][0]} | "
                f"**{stats['accuracy'][0]:.3f} ± {stats['accuracy'][1]:.3f}** | {' | '.join(kl)} | {' | '.join(same)} |"
            )
    return "\n".join(lines) + "\n"


def draw(records: list[dict], datasets: list[str], layers: list[str], path: Path) -> Path:
    """The study's figure: test accuracy and KL from uniform (hidden layer) against edge homophily, one line per
    model with error bars of one std over seeds, and the noisy-neighbours accuracies as bars; saved atomically."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: the study runs unattended
    import matplotlib.pyplot as plt

    sbm = [name for name in datasets if name != NOISY_NAME]
    figure, (accuracy, divergence, noisy) = plt.subplots(1, 3, figsize=(13, 3.8), width_ratios=(2, 2, 1.2))
    for layer in layers:
        stats = [s for s in (summary(records, name, layer) for name in sbm) if s is not None]
        homophily = [s["homophily"][0] for s in stats]
        accuracy.errorbar(homophily, [s["accuracy"][0] for s in stats], [s["accuracy"][1] for s in stats],
                          marker="o", capsize=3, label=layer)  # fmt: skip
        divergence.errorbar(homophily, [s["kl0"][0] for s in stats], [s["kl0"][1] for s in stats],
                            marker="o", capsize=3, label=layer)  # fmt: skip
    accuracy.set(xlabel="edge homophily", ylabel="test accuracy", title="stochastic block model")
    divergence.set(xlabel="edge homophily", ylabel="KL from uniform (nats)", title="attention, hidden layer")
    noisy_stats = {layer: summary(records, NOISY_NAME, layer) for layer in layers}
    shown = [layer for layer in layers if noisy_stats[layer] is not None]
    noisy.bar(shown, [noisy_stats[layer]["accuracy"][0] for layer in shown],
              yerr=[noisy_stats[layer]["accuracy"][1] for layer in shown], capsize=3,
              color=[f"C{layers.index(layer)}" for layer in shown])  # fmt: skip
    homophily = next((noisy_stats[layer]["homophily"][0] for layer in shown), float("nan"))
    noisy.set(ylabel="test accuracy", title=f"noisy neighbours\n(edge homophily {homophily:.2f})")
    for axes in (accuracy, divergence):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=120)
    plt.close(figure)
    return path
