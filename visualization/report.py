"""The run report: one HTML file per run (``runs/<run-id>/report.html``) that opens from disk, offline.

Charts are Plotly figures made in Python; the page inlines Plotly's JavaScript, so it needs no server and no
internet. The one piece of script of our own (``report.js``, inlined too) connects the embedding map to the
attention explorer: clicking a node (or typing its id) redraws the explorer from the attention values embedded
as JSON, through Plotly's own ``Plotly.react``.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.subplots import make_subplots

from gat.io import atomic_write
from gat.nn.analysis import head_agreement
from gat.validate import DictOf, ListOf, Number, Optional, read_json
from visualization.choices import MAP_MAX_NODES
from visualization.degrees import dataset_summary
from visualization.embeddings import default_layers, layer_map, sample_nodes
from visualization.explain import Explainer, reading
from visualization.heads import head_rows, homophily_finding
from visualization.loading import TrainedModel, checked_index
from visualization.style import INK, class_colours

# What the report reads of a run's metrics.json (written by gat.training.loop): the final scores and the curves.
METRICS_SCHEMA = {
    "final": Optional(DictOf((float, type(None)))),
    "best_epoch": Optional(Number(int, 0)),
    "history": Optional(ListOf({"epoch": Number(int, 1)})),
}

READABLE_DEGREE = 12  # the explorer opens on the best-connected node with at most this many neighbours
DECIMALS = 4  # attention as embedded in the page
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
TEMPLATE = "plotly_white"
SCRIPT = Path(__file__).with_name("report.js")


def report_path(trained: TrainedModel) -> Path:
    """Where a run's report goes: ``runs/<run-id>/report.html``."""
    return trained.run_dir / "report.html"


def write_report(
    trained: TrainedModel,
    path: str | os.PathLike | None = None,
    layer: int | None = None,
    seed: int = 0,
    max_nodes: int = MAP_MAX_NODES,
    model_path: str | os.PathLike | None = None,
) -> Path:
    """Write the report of ``trained`` to ``path`` (default :func:`report_path`) and return the path.

    ``layer``: the layer whose output the map shows (default: the last hidden layer); ``max_nodes``: the map
    and the explorer cover a seeded random sample of this many nodes beyond it; ``model_path``: the model as
    the page's ``explain`` command should name it.
    """
    path = Path(path) if path is not None else report_path(trained)
    page = build_report(trained, layer, seed, max_nodes, model_path)
    with atomic_write(path) as file:
        file.write(page.encode())
    return path


def build_report(
    trained: TrainedModel,
    layer: int | None = None,
    seed: int = 0,
    max_nodes: int = MAP_MAX_NODES,
    model_path: str | os.PathLike | None = None,
) -> str:
    """The report of ``trained`` as one HTML page (see :func:`write_report`)."""
    layer, nodes = report_map(trained, layer, seed, max_nodes)
    explainer = Explainer(trained)  # also refuses multi-label graphs, which have no single class to explain
    metrics = _read_metrics(trained.run_dir)
    command_model = str(model_path) if model_path is not None else "models/binaries/" + trained.run_id + ".pt"
    sections = [
        _summary(trained, metrics),
        _explorer(trained, explainer, layer, nodes, seed, command_model),
        _head_analysis(trained),
        _training_curves(metrics),
        _run_tables(trained, metrics),
        _gallery(trained.run_dir / "figures"),
    ]
    return _page(f"GAT run {trained.run_id}", "\n".join(sections))


def report_map(
    trained: TrainedModel, layer: int | None = None, seed: int = 0, max_nodes: int = MAP_MAX_NODES
) -> tuple[int, np.ndarray]:
    """``(layer, nodes)`` of the report's t-SNE map: ``layer`` counted from 0 (default: the last hidden layer), and
    all nodes or a seeded sample of ``max_nodes``."""
    count = len(trained.inspection.hidden)
    layer = (
        default_layers(trained.inspection)[0] if layer is None else checked_index(layer, count, "layer", "the model")
    )
    return layer, sample_nodes(trained.graph.num_nodes, max_nodes, seed)


def _read_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json, checked for what the report reads; None if the run has none."""
    path = run_dir / "metrics.json"
    return read_json(path, METRICS_SCHEMA) if path.is_file() else None


def _figure_html(figure: go.Figure, div_id: str) -> str:
    figure.update_layout(template=TEMPLATE, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


# ---- the run at a glance ------------------------------------------------------------------------------------------


def _summary(trained: TrainedModel, metrics: dict | None) -> str:
    graph = trained.graph
    facts = [f"dataset <b>{html.escape(graph.name)}</b>", f"{graph.num_nodes:,} nodes", f"{graph.num_edges:,} edges"]
    final = (metrics or {}).get("final", {})
    for key in ("test_accuracy", "val_accuracy", "train_accuracy"):
        if final.get(key) is not None:
            facts.append(f"{key.replace('_', ' ')} <b>{final[key]:.3f}</b>")
    facts.append(f"best epoch {trained.best_epoch}")
    missing = "" if metrics else f'<p class="note">no metrics.json in {html.escape(str(trained.run_dir))}</p>'
    return f"<header><h1>GAT run {html.escape(trained.run_id)}</h1><p>{' · '.join(facts)}</p>{missing}</header>"


# ---- embedding map and attention explorer -------------------------------------------------------------------------


def _initial_node(degrees: np.ndarray, nodes: np.ndarray) -> int:
    """The best-connected map node with a readable neighbourhood (ties: the smallest id)."""
    readable = nodes[degrees[nodes] <= READABLE_DEGREE]
    candidates = readable if len(readable) else nodes
    return int(candidates[np.argmax(degrees[candidates])])


def _explorer(
    trained: TrainedModel, explainer: Explainer, layer: int, nodes: np.ndarray, seed: int, command_model: str
) -> str:
    graph, inspection = trained.graph, trained.inspection
    points = layer_map(inspection, layer, nodes, seed, trained.maps)  # the pictures' map when they drew it
    degrees = explainer.neighbour_counts.sum(1)
    data = _explorer_data(trained, explainer, nodes, points, degrees, command_model)
    layer_name = "logits" if layer == len(inspection.hidden) - 1 else f"layer {layer} output"
    sampled = (
        f'<p class="note">The map and the explorer show a random {len(nodes):,} of the {graph.num_nodes:,} nodes '
        f"(seed {seed}): t-SNE and the page would be slow and large otherwise.</p>"
        if len(nodes) < graph.num_nodes
        else ""
    )
    choices = "".join(
        f'<option value="{layer_index}:{head}">layer {layer_index} · head {head}</option>'
        for layer_index, attention in enumerate(inspection.attention)
        for head in range(attention.shape[1])
    )
    controls = (
        '<div class="controls"><label>node <input id="node-input" type="number" min="0" '
        f'max="{graph.num_nodes - 1}"></label><button id="node-button">show</button>'
        f'<label>attention of <select id="head-select">{choices}</select></label>'
        '<span id="explorer-message" class="note"></span></div>'
    )
    explorer_graph = go.Figure(layout={
        "title": "neighbourhood: edge width = attention (grey underneath: uniform)", "showlegend": False,
        "xaxis": {"visible": False, "range": [-1.35, 1.35]}, "height": 430,
        "yaxis": {"visible": False, "range": [-1.35, 1.35], "scaleanchor": "x"},
    })  # fmt: skip
    explorer_bars = go.Figure(layout={
        "title": "attention per neighbour (hatched: misclassified)", "showlegend": False, "height": 300,
        "yaxis": {"title": "attention"}, "xaxis": {"title": "source node", "type": "category"},
    })  # fmt: skip
    body = (
        f"{sampled}<p>The t-SNE map of the {layer_name}, coloured by true class; × marks a misclassified node, a dark "
        "outline a training node. Click a node (or type its id) to explore the attention it pays its "
        "neighbours.</p>"
        '<div class="explorer">'
        f'<div class="map">{_figure_html(_map_figure(trained, explainer, nodes, points, degrees), "embedding-map")}'
        "</div>"
        f'<div class="panel"><h3 id="explorer-title"></h3>{controls}'
        f"{_figure_html(explorer_graph, 'explorer-graph')}{_figure_html(explorer_bars, 'explorer-bars')}"
        '<p id="explorer-reading" class="reading"></p><p>More: <code id="explorer-command"></code></p></div>'
        "</div>"
        f'<script id="report-data" type="application/octet-stream">{_packed(data)}</script>'
    )
    return _section("Embedding map and attention explorer", body, "explorer")


def _map_figure(
    trained: TrainedModel, explainer: Explainer, nodes: np.ndarray, points: np.ndarray, degrees: np.ndarray
) -> go.Figure:
    graph = trained.graph
    palette = class_colours(graph.num_classes)
    labels, predictions = explainer.labels.numpy(), explainer.predictions
    train = graph.train_mask.cpu().numpy()
    split = explainer.splits
    figure = go.Figure()
    for label in range(graph.num_classes):
        members = np.flatnonzero(labels[nodes] == label)
        ids = nodes[members]
        if not len(ids):
            continue
        confidence = explainer.probabilities[ids, predictions[ids]]
        figure.add_trace(go.Scatter(
            x=points[members, 0], y=points[members, 1], mode="markers", name=f"class {label}",
            customdata=[[int(node), label, int(predictions[node]), round(float(share), 3), int(degrees[node]),
                         split[node]] for node, share in zip(ids, confidence, strict=True)],
            hovertemplate="node %{customdata[0]} (%{customdata[5]})<br>class %{customdata[1]} · predicted "
                          "%{customdata[2]} (%{customdata[3]:.0%})<br>degree %{customdata[4]}<extra></extra>",
            marker={"color": palette[label], "size": 7,
                    "symbol": np.where(predictions[ids] != label, "x", "circle").tolist(),
                    "line": {"color": INK, "width": np.where(train[ids], 1.5, 0).tolist()}},
        ))  # fmt: skip
    ring = {"size": 20, "symbol": "circle-open", "color": INK, "line": {"width": 3}}
    figure.add_trace(go.Scatter(x=[], y=[], mode="markers", name="selected", hoverinfo="skip", marker=ring))
    figure.update_layout(
        title="click a node to explore its attention", height=720, legend={"itemclick": "toggle"},
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"}, clickmode="event",
    )  # fmt: skip
    return figure


def _explorer_data(
    trained: TrainedModel,
    explainer: Explainer,
    nodes: np.ndarray,
    points: np.ndarray,
    degrees: np.ndarray,
    command_model: str,
) -> dict:
    """What the page's script needs: the map nodes with their incoming edges (CSR: the edges into ``targets[k]``
    are ``offsets[k]:offsets[k + 1]``, self-loop included) and every layer's attention on them, plus every node's
    class, prediction and confidence (neighbours can lie off the map)."""
    edge_index = explainer.edge_index
    into_map = torch.from_numpy(np.isin(edge_index[1].numpy(), nodes))
    sources, targets = edge_index[0][into_map].numpy(), edge_index[1][into_map].numpy()
    offsets = np.searchsorted(targets, nodes, side="left").tolist() + [len(targets)]  # targets are sorted
    explanations = [reading(explainer.explain(int(node))) for node in nodes]
    return {
        "targets": nodes.tolist(),
        "offsets": offsets,
        "sources": sources.tolist(),
        "heads": [attention.shape[1] for attention in explainer.attention],
        "attention": [
            np.round(attention[into_map].numpy(), DECIMALS).ravel().tolist() for attention in explainer.attention
        ],
        "map_x": np.round(points[:, 0], 3).tolist(),
        "map_y": np.round(points[:, 1], 3).tolist(),
        "labels": explainer.labels.tolist(),
        "predicted": explainer.predictions.tolist(),
        "confidence": np.round(explainer.probabilities.max(1), 3).tolist(),
        "degrees": degrees.tolist(),
        "colours": class_colours(trained.graph.num_classes),
        "readings": explanations,
        "command": f"python -m visualization explain --model {command_model} --node ",
        "initial_node": _initial_node(degrees, nodes),
    }


def _packed(data: dict) -> str:
    """``data`` as gzipped JSON in base64, which the page unpacks with the browser's own DecompressionStream:
    the explorer's attention values and readings compress about 7x (Cora: 2.3 MB of JSON, 0.33 MB gzipped, 0.44 MB
    in base64). Level 6 writes 7 % more than level 9 in an eighth of the time (0.09 s against 0.75 s on Cora)."""
    text = json.dumps(data, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(text, compresslevel=6, mtime=0)).decode()


# ---- per-head analysis ----------------------------------------------------------------------------------------------


def _head_analysis(trained: TrainedModel) -> str:
    rows = head_rows(trained)
    names = [f"L{row['layer']} H{row['head']}" for row in rows]
    charts = make_subplots(1, 3, subplot_titles=("KL divergence from uniform (nats)", "share of neighbour attention "
                           "on same-class neighbours", "mean attention per edge"))  # fmt: skip
    charts.add_bar(x=names, y=[row["mean_kl"] for row in rows], name="mean KL", row=1, col=1)
    charts.add_bar(x=names, y=[row["same_class_share"] for row in rows], name="GAT: same-class share", row=1, col=2)
    charts.add_scatter(x=names, y=[row["uniform_same_class_share"] for row in rows], mode="lines",
                       line={"dash": "dash", "color": INK}, name="uniform attention", row=1, col=2)  # fmt: skip
    for key, name, colour in (
        ("same", "same-class edges", "#009E73"),
        ("different", "different-class edges", "#D55E00"),
    ):
        charts.add_bar(x=names, y=[row[f"mean_{key}"] for row in rows], name=f"GAT: {name}", marker_color=colour,
                       row=1, col=3)  # fmt: skip
        charts.add_scatter(x=names, y=[row[f"uniform_{key}"] for row in rows], mode="lines", name=f"uniform: {name}",
                           line={"dash": "dash", "color": colour}, row=1, col=3)  # fmt: skip
    charts.update_layout(height=420, barmode="group", legend={"orientation": "h", "y": -0.2})

    attention = torch.cat([layer.detach().cpu() for layer in trained.inspection.attention], dim=1)
    agreement = head_agreement(attention, trained.inspection.edge_index.cpu(), trained.graph.num_nodes).numpy()
    heatmap = go.Figure(go.Heatmap(z=np.round(agreement, 3), x=names, y=names, zmin=0, zmax=1, colorscale="Viridis",
                                   hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))  # fmt: skip
    heatmap.update_layout(title="head agreement: 1 - total variation between two heads' attention, mean over nodes",
                          height=460, width=560, yaxis={"autorange": "reversed"})  # fmt: skip

    header = ["layer", "head", "mean KL", "same-class share", "uniform", "mean α same class", "mean α different class",
              "uniform same", "uniform different"]  # fmt: skip
    table = _table(header, [[row[key] for key in ("layer", "head", "mean_kl", "same_class_share",
                                                   "uniform_same_class_share", "mean_same", "mean_different",
                                                   "uniform_same", "uniform_different")] for row in rows])  # fmt: skip
    body = (
        f'<p class="finding">{html.escape(homophily_finding(rows, trained.graph.name))}</p>'
        "<p>Self-loops are left out of the homophily numbers. Uniform attention gives every edge into a node "
        "1/|N(i)|: what a graph convolution with mean aggregation does.</p>"
        f"{_figure_html(charts, 'head-charts')}{table}{_figure_html(heatmap, 'head-agreement')}"
    )
    return _section("Attention per head", body, "heads")


# ---- training, configuration, gallery -------------------------------------------------------------------------------


def _training_curves(metrics: dict | None) -> str:
    history = (metrics or {}).get("history", [])
    if not history:
        return _section("Training curves", '<p class="note">no training history (metrics.json) for this run</p>',
                        "training")  # fmt: skip
    quality = "accuracy" if "train_accuracy" in history[0] else "micro_f1"
    figure = make_subplots(1, 2, subplot_titles=("loss", quality.replace("_", " ")))
    epochs = [record["epoch"] for record in history]
    for column, quantity in enumerate(("loss", quality), start=1):
        for split, colour in (("train", "#0072B2"), ("val", "#E69F00")):
            key = f"{split}_{quantity}"
            if key in history[0]:
                figure.add_scatter(x=epochs, y=[record.get(key) for record in history], mode="lines",
                                   name=f"{split} {quantity}", line={"color": colour}, row=1, col=column)  # fmt: skip
        figure.add_vline(x=metrics.get("best_epoch", 0), line_dash="dot", line_color=INK, row=1, col=column)
    figure.update_layout(height=380, xaxis_title="epoch", xaxis2_title="epoch")
    return _section("Training curves (dotted: the best epoch, whose weights were kept)",
                    _figure_html(figure, "training-curves"), "training")  # fmt: skip


def _run_tables(trained: TrainedModel, metrics: dict | None) -> str:
    config = (metrics or {}).get("config", {})
    final = (metrics or {}).get("final", {})
    summary = dataset_summary(trained.graph)
    tables = [
        ("configuration", _table(["setting", "value"], [[key, value] for key, value in config.items()])),
        ("final metrics (best epoch)", _table(["metric", "value"], [[key, value] for key, value in final.items()])),
        ("dataset", _table(["", ""], [[key, value] for key, value in summary.items()])),
    ]
    body = '<div class="tables">' + "".join(f"<div><h3>{name}</h3>{table}</div>" for name, table in tables) + "</div>"
    return _section("Run and dataset", body, "run")


def _gallery(folder: Path) -> str:
    pictures = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not pictures:
        note = (f'<p class="note">no pictures in {html.escape(str(folder))} yet: '
                "<code>python -m visualization attention|entropy|embeddings</code> or "
                "<code>training_script.py --visualize-after</code> draw them.</p>")  # fmt: skip
        return _section("Pictures", note, "gallery")
    figures = "".join(
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"><figcaption>{html.escape(path.name)}</figcaption></figure>'
        for path in pictures
    )
    return _section("Pictures", f'<div class="gallery">{figures}</div>', "gallery")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1500px; padding: 0 20px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; margin-top: 1.6em; }
.note { color: #666; font-size: 0.9em; } .finding { font-size: 1.1em; background: #f4f7fb; padding: 8px 12px; }
.explorer { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
.controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
.controls input { width: 7em; } .reading { background: #f7f7f2; padding: 8px 12px; line-height: 1.4; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
.tables { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
.gallery img { width: 100%; border: 1px solid #eee; } figure { margin: 0; } figcaption { font-size: 0.8em; }
"""


def _page(title: str, body: str) -> str:
    from plotly.offline import get_plotlyjs

    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>{body}"
        f"<script>{SCRIPT.read_text()}</script></body></html>"
    )
