"""Why did the model predict this? One node's prediction next to its neighbourhood and the attention it paid.

Everything comes from one eval-mode forward pass (:class:`~visualization.loading.TrainedModel`) and the library's
analyses (:mod:`gat.nn.analysis`): the node's class probabilities, its neighbours' classes, the attention-weighted
class make-up of every layer and head against uniform attention, and the neighbours it attended to most.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gat.errors import GATError
from gat.nn.analysis import class_makeup, not_self_loops, uniform_attention
from visualization.loading import TrainedModel, checked_index
from visualization.style import INK, class_colours, new_figure, styled

TOP_NEIGHBOURS = 5
SHIFT = 0.05  # attention moved this much of the share towards a class, over uniform: worth saying


@dataclass
class AttendedNeighbour:
    """A neighbour, how much attention it got (mean over the layer's heads), and how the model classified it."""

    node: int
    true_class: int
    predicted_class: int
    attention: float

    @property
    def correct(self) -> bool:
        return self.true_class == self.predicted_class


@dataclass
class Explanation:
    """One node's prediction and what it aggregated. Class make-ups are ``[C]`` shares (``[H, C]`` per head);
    attention make-ups include the node's own self-loop, as the layer does, and so does ``uniform_makeup``."""

    node: int
    split: str  # train, validation, test or unlabelled
    true_class: int
    probabilities: np.ndarray  # [C]
    neighbour_counts: np.ndarray  # [C] neighbours by class, the node itself left out
    neighbour_predicted_counts: np.ndarray  # [C] neighbours by the class the model predicts for them
    attention_makeup: list[np.ndarray]  # per layer [H, C]
    uniform_makeup: np.ndarray  # [C]
    top_neighbours: list[list[AttendedNeighbour]]  # per layer, most attended first (the node itself left out)

    @property
    def predicted_class(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())

    @property
    def correct(self) -> bool:
        return self.predicted_class == self.true_class

    @property
    def degree(self) -> int:
        return int(self.neighbour_counts.sum())


class Explainer:
    """Explanations of any node of a trained model: the whole-graph analyses run once, each node is then cheap."""

    def __init__(self, trained: TrainedModel) -> None:
        graph, inspection = trained.graph, trained.inspection
        if graph.y.dim() != 1:
            raise GATError(f"{graph.name} is multi-label: explanations need one class per node")
        self.trained = trained
        self.labels = graph.y.cpu()
        self.num_classes = graph.num_classes
        self.probabilities = torch.softmax(inspection.logits.detach().double().cpu(), dim=1).numpy()
        self.predictions = self.probabilities.argmax(1)
        # by target (stable: the inspection's own order within a neighbourhood), so that node i's incoming edges
        # are offsets[i]:offsets[i + 1]
        order = torch.argsort(inspection.edge_index[1].cpu(), stable=True)
        self.edge_index = inspection.edge_index.cpu()[:, order]
        num_nodes = graph.num_nodes
        between = self.edge_index[:, not_self_loops(self.edge_index)]
        self.neighbour_counts = class_makeup(between, self.labels, num_nodes, self.num_classes).numpy()
        predicted = torch.from_numpy(self.predictions)
        self.neighbour_predicted_counts = class_makeup(between, predicted, num_nodes, self.num_classes).numpy()
        uniform = uniform_attention(self.edge_index, num_nodes)
        self.uniform_makeup = class_makeup(self.edge_index, self.labels, num_nodes, self.num_classes, uniform)[:, 0]
        self.attention = [layer.detach().double().cpu()[order] for layer in inspection.attention]
        self.attention_makeup = [class_makeup(self.edge_index, self.labels, num_nodes, self.num_classes, layer)
                                 for layer in self.attention]  # fmt: skip
        self.splits = np.full(num_nodes, "unlabelled", dtype=object)
        for name, mask in (("train", graph.train_mask), ("validation", graph.val_mask), ("test", graph.test_mask)):
            self.splits[mask.cpu().numpy()] = name
        self.offsets = torch.searchsorted(self.edge_index[1], torch.arange(num_nodes + 1)).tolist()

    def explain(self, node: int, top: int = TOP_NEIGHBOURS) -> Explanation:
        """The :class:`Explanation` of ``node`` (negative: from the last), with its ``top`` most attended
        neighbours per layer."""
        node = checked_index(node, len(self.labels), "node", "the graph")
        return Explanation(
            node=node,
            split=str(self.splits[node]),
            true_class=int(self.labels[node]),
            probabilities=self.probabilities[node],
            neighbour_counts=self.neighbour_counts[node],
            neighbour_predicted_counts=self.neighbour_predicted_counts[node],
            attention_makeup=[makeup[node].numpy() for makeup in self.attention_makeup],
            uniform_makeup=self.uniform_makeup[node].numpy(),
            top_neighbours=[self._top_neighbours(node, layer, top) for layer in range(len(self.attention))],
        )

    def _top_neighbours(self, node: int, layer: int, top: int) -> list[AttendedNeighbour]:
        edges = slice(self.offsets[node], self.offsets[node + 1])
        sources = self.edge_index[0][edges].numpy()
        attention = self.attention[layer][edges].mean(1).numpy()
        neighbours = sources != node
        sources, attention = sources[neighbours], attention[neighbours]
        order = np.argsort(-attention, kind="stable")[:top]
        return [AttendedNeighbour(int(sources[k]), int(self.labels[sources[k]]), int(self.predictions[sources[k]]),
                                  float(attention[k])) for k in order]  # fmt: skip


def explain_node(trained: TrainedModel, node: int, top: int = TOP_NEIGHBOURS) -> Explanation:
    """The :class:`Explanation` of one node (for many nodes, build one :class:`Explainer` and reuse it)."""
    return Explainer(trained).explain(node, top)


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def reading(explanation: Explanation) -> str:
    """The plain-language paragraph: what was predicted, what the neighbourhood holds, where the last layer's
    attention went compared with uniform attention, and which of the two the prediction follows."""
    e = explanation
    predicted, true = e.predicted_class, e.true_class
    verdict = "correctly" if e.correct else f"wrongly (class {true} gets {_percent(e.probabilities[true])})"
    sentences = [
        f"Node {e.node} is a {e.split} node of class {true}; the model predicts class {predicted} with "
        f"{_percent(e.confidence)} confidence, {verdict}."
    ]
    if e.degree == 0:
        sentences.append("It has no neighbours, so the prediction rests on its own features alone.")
        return " ".join(sentences)
    same, of_predicted = int(e.neighbour_counts[true]), int(e.neighbour_counts[predicted])
    neighbours = f"Of its {e.degree} neighbour{'s' if e.degree != 1 else ''}, {same} share{'s' if same == 1 else ''} "
    neighbours += "its class"
    if not e.correct:
        neighbours += f" and {of_predicted} {'is' if of_predicted == 1 else 'are'} of the predicted class {predicted}"
    sentences.append(neighbours + ".")
    last = e.attention_makeup[-1].mean(0)  # mean over the last layer's heads
    sentences.append(
        f"In the last layer the node puts {_percent(last[predicted])} of its attention (itself included) on "
        f"class-{predicted} nodes, where uniform attention would put {_percent(e.uniform_makeup[predicted])}."
    )
    if e.top_neighbours[-1]:
        best = e.top_neighbours[-1][0]
        state = "correctly" if best.correct else f"wrongly, as class {best.predicted_class}"
        sentences.append(
            f"Its most attended neighbour is node {best.node} (class {best.true_class}, {state} classified), "
            f"with attention {best.attention:.3f} against a uniform {1 / (e.degree + 1):.3f}."
        )
    sentences.append(_what_the_prediction_follows(e, last[predicted] - e.uniform_makeup[predicted]))
    return " ".join(sentences)


def _what_the_prediction_follows(e: Explanation, attention_shift: float) -> str:
    """The closing sentence: does the prediction go with the neighbourhood's classes, with attention, or with
    neither (then the node's own features decided)?"""
    predicted, true = e.predicted_class, e.true_class
    most_common = _most_common(e.neighbour_counts)
    if predicted in most_common:
        tie = f" (a tie between classes {', '.join(map(str, most_common))})" if len(most_common) > 1 else ""
        sentence = f"The prediction follows the most common class among its neighbours{tie}"
        if not e.correct and true in most_common:
            return sentence + f", but its own class {true} is as common: a tie decided the wrong way."
        if not e.correct:
            return (
                sentence + ", which is not the node's own: a node unlike its neighbourhood, the kind that "
                "aggregating over neighbours tends to get wrong."
            )
        return sentence + "."
    if predicted in _most_common(e.neighbour_predicted_counts):
        return f"The prediction follows what the model predicts for most of its neighbours (class {predicted})."
    classes = ", ".join(map(str, most_common))
    if attention_shift > SHIFT:
        return (f"Its neighbours are mostly class {classes}, but attention shifted weight towards class {predicted}, "
                "and the prediction went with it.")  # fmt: skip
    return f"Its neighbours are mostly class {classes}: the prediction goes against them, from the node's own features."


def _most_common(counts: np.ndarray) -> list[int]:
    return np.flatnonzero(counts == counts.max()).tolist()


def format_explanation(explanation: Explanation) -> str:
    """The explanation as text for the terminal: the prediction, the class make-ups per layer and head against
    uniform attention, the most attended neighbours per layer, and :func:`reading`."""
    e = explanation
    classes = range(len(e.probabilities))
    lines = [
        f"node {e.node} · {e.split} node · degree {e.degree}",
        f"true class {e.true_class} · predicted class {e.predicted_class} ({_percent(e.confidence)}) · "
        + ("correct" if e.correct else "WRONG"),
        "class probabilities: "
        + "  ".join(f"{c}: {_percent(p)}" for c, p in zip(classes, e.probabilities, strict=True)),
        "neighbours by class: "
        + ("  ".join(f"{c}: {int(n)}" for c, n in enumerate(e.neighbour_counts) if n) or "none"),
        "",
        "attention on each class (itself included), per layer and head:",
        "layer  head " + "".join(f"{c:>7}" for c in classes),
    ]
    for layer, makeup in enumerate(e.attention_makeup):
        lines += [
            f"{layer:>5} {head:>5} " + "".join(f"{share:>7.2f}" for share in row) for head, row in enumerate(makeup)
        ]
    lines.append("uniform     " + "".join(f"{share:>7.2f}" for share in e.uniform_makeup))
    for layer, neighbours in enumerate(e.top_neighbours):
        if neighbours:
            lines += [
                "",
                f"most attended neighbours, layer {layer} (mean over heads; uniform {1 / (e.degree + 1):.3f}):",
            ]
            lines += [_neighbour_line(n) for n in neighbours]
    lines += ["", *textwrap.wrap(reading(e), 110)]
    return "\n".join(lines)


def _neighbour_line(n: AttendedNeighbour) -> str:
    verdict = "correct" if n.correct else "WRONG  "
    classes = f"class {n.true_class}  predicted {n.predicted_class} {verdict}"
    return f"  node {n.node:>6}  {classes}  attention {n.attention:.3f}"


@styled
def explanation_figure(explanation: Explanation, num_classes: int) -> Figure:
    """Three panels: the class probabilities; the class make-up of the neighbours, of uniform attention and of
    every layer's and head's attention; the most attended neighbours of the last layer (hatched: misclassified)
    against uniform attention. The reading below."""
    e = explanation
    palette = class_colours(num_classes)
    figure = new_figure(15, 6.2)
    probabilities_ax, makeup_ax, neighbours_ax = figure.subplots(1, 3, width_ratios=[1, 1.5, 1.2])

    bars = probabilities_ax.bar(range(num_classes), e.probabilities, color=palette)
    bars[e.predicted_class].set(edgecolor=INK, linewidth=2)
    probabilities_ax.annotate("true", (e.true_class, e.probabilities[e.true_class]), xytext=(0, 3),
                              textcoords="offset points", ha="center", fontsize=9)  # fmt: skip
    probabilities_ax.set(xticks=range(num_classes), xlabel="class", ylabel="probability", ylim=(0, 1.1),
                         title="prediction (outlined) and true class")  # fmt: skip

    rows = [("neighbours", e.neighbour_counts / max(e.degree, 1)), ("uniform", e.uniform_makeup)]
    rows += [(f"layer {layer} head {head}", shares) for layer, makeup in enumerate(e.attention_makeup)
             for head, shares in enumerate(makeup)]  # fmt: skip
    for row, (_, shares) in enumerate(rows):
        makeup_ax.barh(row, shares, left=np.cumsum(shares) - shares, color=palette, height=0.7)
    makeup_ax.set(yticks=range(len(rows)), yticklabels=[name for name, _ in rows], xlim=(0, 1),
                  xlabel="share", title="class make-up: neighbours, uniform and attention")  # fmt: skip
    makeup_ax.invert_yaxis()

    neighbours = e.top_neighbours[-1]
    neighbour_bars = neighbours_ax.bar([str(n.node) for n in neighbours], [n.attention for n in neighbours],
                                       color=[palette[n.true_class] for n in neighbours])  # fmt: skip
    for bar, neighbour in zip(neighbour_bars, neighbours, strict=True):
        if not neighbour.correct:
            bar.set(hatch="///", edgecolor=INK)
    if neighbours:
        neighbours_ax.axhline(1 / (e.degree + 1), color=INK, linestyle="--", linewidth=1, label="uniform")
        neighbours_ax.legend(loc="upper right")
    neighbours_ax.set(xlabel="neighbour", ylabel="attention (mean over heads)",
                      title=f"most attended, layer {len(e.top_neighbours) - 1} (hatched: misclassified)")  # fmt: skip

    handles = [Patch(color=palette[c], label=f"class {c}") for c in range(num_classes)]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(num_classes, 10))
    verdict = "correct" if e.correct else "wrong"
    figure.suptitle(
        f"why node {e.node} ({e.split}, class {e.true_class}) is predicted class {e.predicted_class} "
        f"({_percent(e.confidence)}, {verdict})\n" + "\n".join(textwrap.wrap(reading(e), 190)),
        fontsize=10,
    )
    return figure


def explanation_name(node: int) -> str:
    """File name of the explanation picture."""
    return f"explain_node{node}"
