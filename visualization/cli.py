"""``python -m visualization {dataset,graph,attention,entropy,embeddings,all,report,explain}`` (or ``gat-viz``):
draw, save, print the paths.

Headless by default (matplotlib's Agg backend: no window, works over SSH and in CI); ``--show`` also opens the
figures. Every problem the user can fix is one line on stderr and exit code 1 (2 for a bad flag).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

# Nothing imported here imports torch or matplotlib: --help and a flag error answer at once (they come in run()).
from gat.data.registry import dataset_names
from gat.errors import GATError, OneLineErrorParser, bounded_int, describe_os_error
from gat.threads import MAX_THREADS, THREADS_VARIABLE, apply_thread_policy, requested_threads
from gat.training.config import MAX_SEED
from visualization.choices import (
    BACKENDS,
    FORMATS,
    LAYOUTS,
    MAP_MAX_NODES,
    MAX_NODES,
    MIN_NODES,
    NEIGHBOURHOOD_LAYOUTS,
    TOP_K,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gat.data.graph import Graph
    from visualization.loading import TrainedModel


def pixels(text: str) -> tuple[int, int]:
    """``"1200x800"`` -> ``(1200, 800)``."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels like 1200x800, got {text!r}") from None
    if not (16 <= width <= 10000 and 16 <= height <= 10000):
        raise argparse.ArgumentTypeError(f"width and height must be 16..10000 pixels, got {text}")
    return width, height


def head_choice(text: str) -> int | None:
    """An integer head, or ``all`` (None): every head of the layer in one grid."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a head number or 'all', got {text!r}") from None


def common_options(with_model: bool) -> argparse.ArgumentParser:
    """The options every command takes; the help of a command without a model does not mention one."""
    # fmt: off
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", type=str.lower, choices=dataset_names(), default=None,
                        help="the graph (default: the model's dataset); must match --model's" if with_model
                        else "the graph (default cora)")
    common.add_argument("--data-dir", default="data", help="dataset cache (default data)")
    common.add_argument("--data-mirror", default=None,
                        help="folder or URL with the Planetoid files (default: $GAT_DATA_MIRROR, else GitHub)")
    common.add_argument("--out", type=Path, default=None,
                        help="folder for the files (default: runs/<run-id>/figures)" if with_model
                        else "folder for the files (default figures)")
    common.add_argument("--format", nargs="+", choices=FORMATS, default=["png"],
                        help="one or both (default png)")
    common.add_argument("--size", type=pixels, default=None, help="PNG size in pixels, e.g. 1600x1200 (scaled)")
    common.add_argument("--show", action="store_true", help="also open the figures in a window")
    common.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None,
                        help=f"CPU threads per operation (default: ${THREADS_VARIABLE}, else $OMP_NUM_THREADS, "
                        "else 1: every picture is many small operations)")
    if with_model:
        common.add_argument("--model", type=Path, default=None,
                            help="a binary (models/binaries/*.pt) or checkpoint (default: the newest binary)")
        common.add_argument("--models-dir", default="models",
                            help="where the default --model is looked for (default models)")
    # fmt: on
    return common


def build_parser() -> argparse.ArgumentParser:
    # fmt: off
    plain, with_model = common_options(False), common_options(True)
    parser = OneLineErrorParser(prog="python -m visualization", description="Draw a graph dataset or what a "
                                "trained GAT learned; prints the paths of the files it writes.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=OneLineErrorParser)
    commands.add_parser("dataset", parents=[plain],
                        help="degree distribution and ranks, and a JSON summary of the graph")
    graph = commands.add_parser("graph", parents=[plain], help="the whole graph")
    _graph_options(graph)
    attention = commands.add_parser("attention", parents=[with_model],
                                    help="a node's neighbourhood, edges as wide as their attention")
    which = attention.add_mutually_exclusive_group()
    which.add_argument("--node", type=bounded_int(0), nargs="+",
                       help="node ids (default: the --top-k highest-degree nodes)")
    which.add_argument("--top-k", type=bounded_int(1), default=1,
                       help="draw the k nodes with the most neighbours (default 1)")
    attention.add_argument("--layer", type=int, default=0, help="default 0; negative counts from the last")
    attention.add_argument("--head", type=head_choice, default=None, help="a head, or 'all' for a grid (default)")
    attention.add_argument("--layout", choices=NEIGHBOURHOOD_LAYOUTS, default="circular", help="default circular")
    entropy = commands.add_parser("entropy", parents=[with_model],
                                  help="attention entropy histograms against uniform attention, the distance from "
                                  "uniform per node on a log axis, and their table")
    entropy.add_argument("--layer", type=int, nargs="+", default=None, help="default: every layer")
    embeddings = commands.add_parser("embeddings", parents=[with_model],
                                     help="t-SNE of layer outputs, coloured by class, training and misclassified "
                                     "nodes marked")
    embeddings.add_argument("--layer", type=int, nargs="+", default=None,
                            help="layers to map; -1 is the logits (default: the last hidden layer and the logits)")
    embeddings.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    embeddings.add_argument("--max-nodes", type=bounded_int(MIN_NODES), default=MAX_NODES,
                            help="t-SNE a random sample beyond this many nodes (default %(default)s)")
    everything = commands.add_parser("all", parents=[with_model],
                                     help="every picture for a model: dataset, graph, attention of the --top-k "
                                     "best-connected nodes in every layer, entropy, t-SNE")
    _graph_options(everything)
    everything.add_argument("--top-k", type=bounded_int(1), default=TOP_K,
                            help="attention pictures of this many best-connected nodes (default %(default)s)")
    everything.add_argument("--max-nodes", type=bounded_int(MIN_NODES), default=MAX_NODES,
                            help="t-SNE a random sample beyond this many nodes (default %(default)s)")
    report = commands.add_parser("report", parents=[with_model],
                                 help="runs/<run-id>/report.html: the run, an embedding map and attention explorer")
    report.add_argument("--layer", type=int, default=None,
                        help="the layer whose output the map shows (default: the last hidden layer)")
    report.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    report.add_argument("--max-nodes", type=bounded_int(MIN_NODES), default=MAP_MAX_NODES,
                        help="map and explore a random sample beyond this many nodes (default %(default)s)")
    explain = commands.add_parser("explain", parents=[with_model],
                                  help="why the model predicted a node's class: text and a figure")
    explain.add_argument("--node", type=bounded_int(0), required=True, help="the node to explain")
    # fmt: on
    return parser


def _graph_options(command: argparse.ArgumentParser) -> None:
    # fmt: off
    command.add_argument("--layout", choices=LAYOUTS, default="kamada-kawai", help="default kamada-kawai")
    command.add_argument("--backend", choices=BACKENDS, default="igraph",
                         help="default igraph; networkx is the slow fallback (pure-Python layouts, much slower)")
    command.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    command.add_argument("--highlight", type=bounded_int(0), nargs="+", default=[], metavar="NODE",
                         help="ring and name these nodes in the whole-graph drawing (the hub always is)")
    # fmt: on


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        requested_threads(args.threads)  # a malformed $GAT_THREADS is a usage error too, found before torch
    except GATError as error:
        parser.error(str(error))
    if args.threads is not None:
        os.environ[THREADS_VARIABLE] = str(args.threads)  # the flag is the variable: t-SNE's threads read it too
    import matplotlib

    apply_thread_policy(0, args.threads)
    if not args.show:
        matplotlib.use("Agg")  # no window, no display needed (switching is allowed while no pyplot figure exists)
    from gat.training.allocator import memory_errors_in_one_line

    try:
        with memory_errors_in_one_line("try a smaller --max-nodes or fewer --threads"):
            paths, figures = run(args)
        for path in paths:
            print(path)
    except GATError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a fault the project's writer did not see first, or a closed pipe: still one line
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    if args.show:
        import matplotlib.pyplot as plt

        for figure in figures:
            plt.figure(figure)  # hand the figure to pyplot, which gives it a window
        plt.show()
    return 0


def run(args: argparse.Namespace) -> tuple[list[Path], list[Figure]]:
    """Do the command; returns the paths written and the figures (for ``--show``)."""
    from gat.data.registry import load_dataset
    from gat.io import ensure_writable
    from visualization.loading import latest_binary, load_trained
    from visualization.maps import MapWorker
    from visualization.style import save_figures

    if args.out is not None:
        ensure_writable(args.out)  # fail fast: before the dataset and the model are loaded
    if args.command in ("dataset", "graph"):
        out = ensure_writable(args.out or Path("figures"))
        graph = load_dataset(args.dataset or "cora", args.data_dir, mirror=args.data_mirror)
        figures, files = (_dataset if args.command == "dataset" else _graph)(args, graph, out)
    else:
        args.model = args.model or latest_binary(args.models_dir)  # resolved once: `report` names it too
        # `all` has its t-SNE maps made by a worker process (visualization.maps) while it draws its other pictures;
        # the commands that draw little besides a map would gain nothing (docs/design.md)
        with MapWorker() if args.command == "all" else nullcontext() as worker:
            trained = load_trained(args.model, args.dataset, args.data_dir, args.data_mirror)
            out = ensure_writable(args.out or trained.run_dir / "figures")
            if worker is not None:
                from visualization.embeddings import request_maps
                from visualization.reports import model_maps  # `all` draws them: not imported for the other commands

                wanted = model_maps(trained, args.seed, args.max_nodes)  # those of _everything's model_figures
                request_maps(worker, trained.inspection, wanted, args.seed, trained.maps)
            commands = {"attention": _attention, "entropy": _entropy, "embeddings": _embeddings,
                        "all": _everything, "report": _report, "explain": _explain}  # fmt: skip
            figures, files = commands[args.command](args, trained, out)
    paths = save_figures(figures, out, args.format, args.size)
    return paths + files, list(figures.values())


def _dataset(args: argparse.Namespace, graph: Graph, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization import reports

    summary = reports.write_dataset_summary(graph, out)
    print(summary.read_text(), end="")
    return reports.dataset_figures(graph), [summary]


def _graph(args: argparse.Namespace, graph: Graph, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization import reports
    from visualization.graph_drawing import draw_graph

    figure = draw_graph(graph, args.layout, args.backend, args.seed, args.highlight)
    return {reports.graph_name(graph.name, args.backend, args.layout): figure}, []


def _everything(args: argparse.Namespace, trained: TrainedModel, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    """The dataset's pictures and summary, the whole graph, and :func:`reports.model_figures` with the table."""
    from visualization import reports
    from visualization.entropy import entropy_statistics, save_statistics
    from visualization.graph_drawing import draw_graph

    graph = trained.graph
    figures = reports.dataset_figures(graph)
    figures[reports.graph_name(graph.name, args.backend, args.layout)] = draw_graph(
        graph, args.layout, args.backend, args.seed, args.highlight
    )
    figures.update(reports.model_figures(trained, args.top_k, args.seed, args.max_nodes))
    files = [reports.write_dataset_summary(graph, out)]
    return figures, files + save_statistics(entropy_statistics(trained.inspection), out, "entropy_statistics")


def _attention(args: argparse.Namespace, trained: TrainedModel, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization import reports
    from visualization.attention import draw_attention
    from visualization.degrees import top_degree_nodes
    from visualization.loading import checked_index

    attention = trained.inspection.attention
    layer = checked_index(args.layer, len(attention), "layer", "the model")
    head = None if args.head is None else checked_index(args.head, attention[layer].shape[1], "head", f"layer {layer}")
    nodes = args.node or top_degree_nodes(trained.graph, args.top_k)
    figures = {reports.attention_name(node, layer, head):
               draw_attention(trained.inspection, trained.graph, node, layer, None if head is None else [head],
                              args.layout)
               for node in nodes}  # fmt: skip
    return figures, []


def _entropy(args: argparse.Namespace, trained: TrainedModel, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization import reports
    from visualization.entropy import entropy_figure, entropy_statistics, format_statistics, save_statistics
    from visualization.loading import checked_index

    count = len(trained.inspection.attention)
    layers = [checked_index(layer, count, "layer", "the model") for layer in args.layer or range(count)]
    rows = entropy_statistics(trained.inspection)
    print(format_statistics(rows))
    figure = entropy_figure(trained.inspection, layers, reports.entropy_title(trained))
    return {"entropy": figure}, save_statistics(rows, out, "entropy_statistics")


def _embeddings(args: argparse.Namespace, trained: TrainedModel, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization.embeddings import default_layers, embedding_figure, embeddings_name
    from visualization.loading import checked_index

    count = len(trained.inspection.hidden)
    chosen = args.layer or default_layers(trained.inspection)
    layers = [checked_index(layer, count, "layer", "the model") for layer in chosen]
    figure = embedding_figure(trained.inspection, trained.graph, layers, args.seed, args.max_nodes, trained.maps)
    return {embeddings_name(layers): figure}, []


def _report(args: argparse.Namespace, trained: TrainedModel, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization.report import write_report

    path = args.out / "report.html" if args.out else None  # default: runs/<run-id>/report.html
    return {}, [write_report(trained, path, args.layer, args.seed, args.max_nodes, model_path=args.model)]


def _explain(args: argparse.Namespace, trained: TrainedModel, out: Path) -> tuple[dict[str, Figure], list[Path]]:
    from visualization.explain import explain_node, explanation_figure, explanation_name, format_explanation

    explanation = explain_node(trained, args.node)
    print(format_explanation(explanation))
    return {explanation_name(explanation.node): explanation_figure(explanation, trained.graph.num_classes)}, []
