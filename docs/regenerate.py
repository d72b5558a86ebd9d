"""Redraw every picture in docs/images and print every figure the docs quote about them, from the current code.

    python docs/regenerate.py                      # pictures -> docs/images, numbers -> stdout as Markdown
    python docs/regenerate.py --out /tmp/pictures  # somewhere else
    python docs/regenerate.py --no-graph           # without the whole-graph drawing (the slowest picture)
    python docs/regenerate.py --attention-study    # also the attention study's figure (its runs: ~20 min once)

It trains the fixed-seed default Cora model (``TrainConfig()``: the paper's settings, seed 0, no TensorBoard) into a
temporary folder, draws the pictures with the visualization package's own functions under stable file names, writes
the run's report.html and a browser screenshot of it (where headless Chromium is installed), and prints the dataset
table, Cora's summary, the run's result, the attention-entropy table, the attention-vs-homophily finding and the
explanations of one correctly and one wrongly classified node. With ``--attention-study`` it also runs
``python -m gat.reproduce --study attention`` (saved runs under ``results/`` are read back, not retrained) and copies
its figure as ``attention_study.png``. On CPU the same code gives the same numbers and pictures on every run.
Cora's raw files come from ``data/`` or ``$GAT_DATA_MIRROR``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: `gat` and `visualization` import from the repo

from gat import reproduce  # noqa: E402
from gat.data.graph import Graph  # noqa: E402
from gat.data.registry import load_dataset  # noqa: E402
from gat.errors import GATError  # noqa: E402
from gat.io import save_bytes  # noqa: E402
from gat.training.config import TrainConfig  # noqa: E402
from gat.training.trainer import train  # noqa: E402
from visualization.attention import draw_attention  # noqa: E402
from visualization.browser import missing_browser, screenshot  # noqa: E402
from visualization.degrees import dataset_summary, degree_figure, top_degree_nodes  # noqa: E402
from visualization.embeddings import default_layers, embedding_figure, embeddings_name  # noqa: E402
from visualization.entropy import entropy_figure, entropy_statistics, format_statistics  # noqa: E402
from visualization.explain import explain_node, explanation_figure, explanation_name, format_explanation  # noqa: E402
from visualization.graph_drawing import draw_graph  # noqa: E402
from visualization.heads import head_rows, homophily_finding  # noqa: E402
from visualization.loading import load_trained  # noqa: E402
from visualization.report import write_report  # noqa: E402
from visualization.reports import attention_name  # noqa: E402
from visualization.style import save_figures  # noqa: E402

SMALL_NEIGHBOURHOOD = 1367  # a Cora node with 10 neighbours: every edge of its picture can be read
EXPLAINED = (1728, 2175)  # two Cora test nodes of degree 5: the default model gets the first right, the second wrong
TABLE_DATASETS = ("cora", "citeseer")  # the datasets whose raw files a mirror usually holds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder for the pictures")
    parser.add_argument("--data-dir", default=str(REPO / "data"), help="dataset cache (default: the repo's data/)")
    parser.add_argument("--data-mirror", default=os.environ.get("GAT_DATA_MIRROR"), help="default $GAT_DATA_MIRROR")
    parser.add_argument("--datasets", default=",".join(TABLE_DATASETS), help="rows of the dataset table")
    parser.add_argument("--no-graph", action="store_true", help="skip the whole-graph drawing (~15 s on Cora)")
    parser.add_argument(
        "--attention-study",
        action="store_true",
        help="also run (or read back) python -m gat.reproduce --study attention and copy its figure",
    )
    parser.add_argument(
        "--results", type=Path, default=REPO / "results", help="the study's --output (default: %(default)s)"
    )
    return parser.parse_args(argv)


def dataset_table(names: list[str], data_dir: str, mirror: str | None) -> str:
    rows = [
        "| dataset | nodes | features | classes | directed edges | train / val / test |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        try:
            graph = load_dataset(name, data_dir, mirror=mirror)
        except GATError as error:
            rows.append(f"| `{name}` | not available here: {error} | | | | |")
            continue
        split = " / ".join(str(int(mask.sum())) for mask in (graph.train_mask, graph.val_mask, graph.test_mask))
        cells = [f"`{name}`", graph.num_nodes, graph.num_features, graph.num_classes, graph.num_edges, split]
        rows.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(rows)


def summary_table(graph: Graph) -> str:
    summary = dataset_summary(graph)
    lines = ["| Cora | |", "|---|---|"]
    for key, value in summary.items():
        lines.append(f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return "\n".join(lines)


def train_default(folder: Path, data_dir: str, mirror: str | None):
    config = TrainConfig(
        data_dir=data_dir,
        data_mirror=mirror,
        runs_dir=str(folder / "runs"),
        models_dir=str(folder / "models"),
        tensorboard=False,
        quiet=True,
    )
    return train(config)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print("## Datasets\n\n" + dataset_table(args.datasets.split(","), args.data_dir, args.data_mirror) + "\n")
    graph = load_dataset("cora", args.data_dir, mirror=args.data_mirror)
    print(summary_table(graph) + "\n")
    figures = {"cora_degrees": degree_figure(graph)}
    if not args.no_graph:
        figures["cora_graph_igraph_kamada-kawai"] = draw_graph(graph, layout="kamada-kawai", backend="igraph", seed=0)

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = train_default(Path(folder), args.data_dir, args.data_mirror)
        print(
            "## The default run (`python training_script.py`)\n\n"
            "| epochs | best epoch | val acc | test acc |\n|---|---|---|---|\n"
            f"| {result.epochs} | {result.best_epoch} | {result.metrics['val_accuracy']:.3f} | "
            f"{result.metrics['test_accuracy']:.3f} |\n"
        )
        trained = load_trained(result.binary_path, data_dir=args.data_dir, mirror=args.data_mirror)
        print(f"trained and loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        report = write_report(trained, Path(folder) / "report.html", model_path=result.binary_path)
        print(f"## Attention vs homophily\n\n{homophily_finding(head_rows(trained), graph.name)}\n")
        reason = missing_browser()
        if reason is None:
            screenshot(report, args.out / "report.png", node=EXPLAINED[1])
        else:
            print(f"report.png not redrawn: {reason}", file=sys.stderr)

    inspection = trained.inspection
    hub = top_degree_nodes(graph, 1)[0]
    figures[attention_name(hub, 0, None)] = draw_attention(inspection, graph, hub, layer=0)
    figures[attention_name(SMALL_NEIGHBOURHOOD, 0, None)] = draw_attention(
        inspection, graph, SMALL_NEIGHBOURHOOD, layer=0, layout="kamada-kawai"
    )
    figures["entropy"] = entropy_figure(inspection, title="attention entropy per node vs uniform attention: cora")
    for node in EXPLAINED:
        explanation = explain_node(trained, node)
        print(f"## `python -m visualization explain --node {node}`\n\n```\n{format_explanation(explanation)}\n```\n")
        figures[explanation_name(node)] = explanation_figure(explanation, graph.num_classes)
    layers = default_layers(inspection)
    figures[embeddings_name(layers)] = embedding_figure(inspection, graph, layers, seed=0, maps=trained.maps)
    print("## Attention entropy (nats)\n\n```\n" + format_statistics(entropy_statistics(inspection)) + "\n```\n")

    paths = save_figures(figures, args.out)
    if args.attention_study:
        if reproduce.main(["--study", "attention", "--output", str(args.results), "--data-dir", args.data_dir]) != 0:
            raise SystemExit("the attention study failed: attention_study.png not redrawn")
        study = (args.results / "attention" / "attention.png").read_bytes()
        paths.append(save_bytes(study, args.out / "attention_study.png"))
    print(
        "## Pictures\n\n"
        + "\n".join(f"- `{path.relative_to(REPO) if path.is_relative_to(REPO) else path}`" for path in paths)
    )


if __name__ == "__main__":
    main()
