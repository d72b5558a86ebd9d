"""What each remaining difference from the GAT paper's code does to test accuracy, over many seeds.

    python benchmarks/paper_differences.py --datasets citeseer,cora --seeds 10 --output results/paper-differences
    python benchmarks/paper_differences.py --variants base,novaluedrop --seeds 2 --epochs 20 --output results/quick

A variant is ``base`` (this library as it is) or ``+``-joined changes to :class:`gat.nn.layers.GATLayer` that make
it compute what the original TensorFlow code (github.com/PetarV-/GAT, ``utils/layers.py`` ``attn_head``) computes,
patched in here for the duration of that variant's runs:

- ``headin``: an input-dropout mask of its own for every head. The original builds each head as a separate
  ``attn_head`` that drops its input itself, so the 8 heads of a layer see 8 different dropped copies of the
  features; this library drops a layer's input once, shared by its heads (one projection for all heads).
- ``tfinit``: TensorFlow's Glorot fans. The original's kernels are per head: ``W^k`` is ``[in, F]`` (bound
  ``sqrt(6 / (in + F))``) and each attention half a ``[F, 1]`` conv1d kernel (``sqrt(6 / (F + 1))``); this library
  initialises ``W`` as one ``[H * F, in]`` matrix and the attention vectors as ``[1, H, F]`` tensors, whose torch
  fans are ``(H * F, F)``: the attention vectors start about 3 times smaller on the paper's first layer.
- ``scorebias``: the original scores each half with ``conv1d(seq_fts, 1, 1)``, which has a bias (zero-initialised,
  learned, under the same L2 penalty): ``e_ij = LeakyReLU(a_s.Wh_j + b_s + a_t.Wh_i + b_t)``. The sum of the two
  biases shifts every score of a head, which the LeakyReLU's kink makes matter (a shift alone would cancel in the
  softmax).
- ``novaluedrop``: no dropout on the projected features a layer aggregates, only on its input and its attention, as
  PyG's ``GATConv`` computes. Not a difference from the paper's code but from PyG's layer: what it does to accuracy
  tells why PyG's GAT scores differently.
- ``unfused``: none of these, through the plain-op forward the others use (a control: it must match ``base``).

Each variant runs ``gat.reproduce`` with ``--layers gat`` into ``<output>/<variant>/`` (resumable, one JSON per run;
every run records the test accuracy of the epoch each selection rule would keep). The summary prints mean ± std
over the seeds for every rule.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: `gat` imports

from benchmarks.entry import run_main  # noqa: E402
from benchmarks.trained_runs import add_run_arguments  # noqa: E402
from gat import reproduce  # noqa: E402
from gat.errors import GATError, OneLineErrorParser, bounded_int  # noqa: E402
from gat.nn import layers, model  # noqa: E402
from gat.nn.kernels.ops import aggregate, dropout, neighbourhood_softmax  # noqa: E402
from gat.nn.kernels.projection import project  # noqa: E402
from gat.reproduce.runner import mean_and_spread  # noqa: E402
from gat.training.config import SELECTION_RULES  # noqa: E402
from gat.validate import Number, read_json  # noqa: E402

CHANGES = ("headin", "tfinit", "scorebias", "novaluedrop", "unfused")
# What the summary reads of a run gat.reproduce saved (gat.validate): every rule's test score, and the epochs.
RUN_SCHEMA = {"test_by_rule": dict.fromkeys(SELECTION_RULES, Number(float, 0, 1)), "epochs": Number(int, 0)}
_create, _reset = layers.GATLayer._create_parameters, layers.GATLayer.reset_parameters


def _patched(changes: frozenset[str]) -> dict[type, dict]:
    """The methods of GATLayer and GAT that compute ``changes``, by class and name."""

    def create_parameters(self: layers.GATLayer) -> None:
        _create(self)
        if "scorebias" in changes:  # [2, H]: the source half's bias, then the target half's
            self.score_bias = nn.Parameter(torch.zeros(2, self.num_heads))

    def reset_parameters(self: layers.GATLayer) -> None:
        _reset(self)
        if "tfinit" in changes:
            with torch.no_grad():
                self.linear.weight.uniform_(*_bounds(self.in_features + self.out_features))  # per head [in, F]
                self.att_source.uniform_(*_bounds(self.out_features + 1))  # per head [F, 1]
                self.att_target.uniform_(*_bounds(self.out_features + 1))

    def forward(self, x, edge_index, return_attention=False, num_targets=None):
        """GATLayer.forward in plain ops: score, softmax, dropout of the attention then of the values, aggregate
        (the fused kernel's order of random draws)."""
        num_nodes, heads, size = x.shape[0], self.num_heads, self.out_features
        neighbourhoods = self.neighbourhoods(edge_index, num_nodes, num_targets)
        weight = self.linear.weight
        if "headin" in changes and self.training:  # every head drops its own copy of the input
            per_head = [project(dropout(x, self.input_dropout, True), weight[k * size : (k + 1) * size])
                        for k in range(heads)]  # fmt: skip
            projected = torch.stack(per_head, 1)
        else:
            projected = project(x, weight).view(num_nodes, heads, size)
        source, target = (projected * self.att_source).sum(-1), (projected * self.att_target).sum(-1)  # [N, H]
        if "scorebias" in changes:
            source, target = source + self.score_bias[0], target + self.score_bias[1]
        scores = neighbourhoods.at_source(source) + neighbourhoods.at_target(target[: neighbourhoods.num_targets])
        attention = neighbourhood_softmax(F.leaky_relu(scores, self.negative_slope), neighbourhoods)
        weights = dropout(attention, self.dropout, self.training)
        values = projected if "novaluedrop" in changes else dropout(projected, self.dropout, self.training)
        return self._output(aggregate(weights, values, neighbourhoods), neighbourhoods, attention, return_attention)

    def apply_layer(self, index, h, edge_index, return_attention=False, num_targets=None):
        """GAT.apply_layer, but the layer drops its own input, once per head (no skip connections)."""
        layer = self.layers[index]
        layer.input_dropout = self.dropout
        out = layer(h, edge_index, return_attention=return_attention, num_targets=num_targets)
        out, used = out if return_attention else (out, None)
        out = out if index == len(self.layers) - 1 else F.elu(out)
        return (out, used) if return_attention else out

    methods = {"_create_parameters": create_parameters, "reset_parameters": reset_parameters}
    if changes & {"headin", "scorebias", "novaluedrop", "unfused"}:
        methods["forward"] = forward
    return {layers.GATLayer: methods, model.GAT: {"apply_layer": apply_layer} if "headin" in changes else {}}


def _bounds(fans: int) -> tuple[float, float]:
    """Glorot-uniform's interval for fan_in + fan_out = ``fans``."""
    bound = math.sqrt(6 / fans)
    return -bound, bound


def changes_of(name: str) -> frozenset[str]:
    """The changes variant ``name`` joins with ``+`` (``base``: none); `GATError` for one that is not a change."""
    changes = frozenset(name.split("+")) - {"base"}
    if unknown := changes - set(CHANGES):
        raise GATError(f"unknown change(s) {', '.join(sorted(unknown))}: choose from base, {', '.join(CHANGES)}")
    return changes


@contextmanager
def variant(name: str) -> Iterator[None]:
    """GATLayer (and GAT) computing the changes named in ``name`` while inside; restored after."""
    patched = _patched(changes_of(name))
    saved = [
        (owner, attribute, getattr(owner, attribute)) for owner, methods in patched.items() for attribute in methods
    ]
    for owner, methods in patched.items():
        for attribute, method in methods.items():
            setattr(owner, attribute, method)
    try:
        yield
    finally:
        for owner, attribute, method in saved:
            setattr(owner, attribute, method)


def summary(output: Path, variants: list[str], datasets: list[str]) -> str:
    """Markdown: per dataset and variant, mean ± std over the saved runs of every selection rule's test score."""
    lines = [f"| dataset | variant | runs | {' | '.join(SELECTION_RULES)} | epochs |",
             "|---|---|---|" + "---|" * (len(SELECTION_RULES) + 1)]  # fmt: skip
    for dataset in datasets:
        for name in variants:
            paths = sorted((output / name / "runs").glob(f"{dataset}_gat_*"))
            runs = [read_json(path, RUN_SCHEMA) for path in paths]
            if not runs:
                continue
            cells = [mean_and_spread([run["test_by_rule"][rule] for run in runs], 4) for rule in SELECTION_RULES]
            epochs = statistics.mean(run["epochs"] for run in runs)
            lines.append(f"| {dataset} | {name} | {len(runs)} | {' | '.join(cells)} | {epochs:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="base,headin,tfinit,scorebias,headin+tfinit+scorebias,novaluedrop")
    parser.add_argument("--datasets", default="citeseer,cora")
    parser.add_argument("--seeds", type=bounded_int(1, reproduce.MAX_SEEDS), default=10)
    parser.add_argument("--output", default="results/paper-differences")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    variants, output = args.variants.split(","), Path(args.output)
    try:
        for name in variants:
            changes_of(name)  # every variant is known before the first one trains
    except GATError as error:
        parser.error(f"argument --variants: {error}")
    for name in variants:
        flags = ["--datasets", args.datasets, "--layers", "gat", "--seeds", str(args.seeds),
                 "--output", str(output / name), "--data-dir", args.data_dir]  # fmt: skip
        flags += ["--data-mirror", args.data_mirror] if args.data_mirror is not None else []
        flags += ["--epochs", str(args.epochs)] if args.epochs is not None else []
        flags += ["--threads", str(args.threads)] if args.threads is not None else []
        with variant(name):
            if reproduce.main(flags) != 0:
                raise GATError(f"variant {name} failed")
    print(summary(output, variants, args.datasets.split(",")))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
