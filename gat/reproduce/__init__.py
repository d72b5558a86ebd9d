"""``python -m gat.reproduce``: the GAT paper's results table, re-measured over many seeds, with GATv2 beside GAT.

    python -m gat.reproduce                                    # 10 seeds x (cora, citeseer, pubmed, ppi) x (gat, gatv2)
    python -m gat.reproduce --seeds 2 --datasets cora,citeseer # a quick check
    python -m gat.reproduce --study attention                  # where attention matters: gat.reproduce.attention

The runs, their saved results and the tables are `gat.reproduce.runner`'s; the study's graphs and figure are
`gat.reproduce.attention`'s. This module reads the flags, before torch is imported.
"""

from __future__ import annotations

from gat.data.registry import dataset_names
from gat.errors import GATError, OneLineErrorParser, bounded_int
from gat.threads import MAX_THREADS, choose_threads, requested_threads
from gat.training.config import LAYERS, SELECTION_RULES

MAX_SEEDS = 10_000  # runs per dataset and layer: every job is planned before the first one trains


def build_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="python -m gat.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds",
        type=bounded_int(1, MAX_SEEDS),
        default=None,
        help="runs per dataset and layer: seeds 0..N-1 (default 10; study: 5)",
    )
    parser.add_argument("--datasets", default="cora,citeseer,pubmed,ppi", help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--layers", default=None, help="comma-separated: gat, gatv2, mean (default: gat,gatv2; study: all three)"
    )
    parser.add_argument("--output", default="results", help="folder for runs/*.json and results.md (default: results)")
    parser.add_argument(
        "--epochs", type=bounded_int(1), default=None, help="cap on epochs per run (default: the preset's)"
    )
    parser.add_argument(
        "--select", choices=tuple(SELECTION_RULES), default="paper", help="the model each run keeps (default: paper)"
    )
    parser.add_argument(
        "--study",
        choices=("attention",),
        default=None,
        help="instead of the paper's table: attention (GAT, GATv2 and mean on generated graphs from heterophilous "
        "to homophilous, and with noisy neighbours; writes <output>/attention/)",
    )
    parser.add_argument("--quick", action="store_true", help="with --study: tiny graphs, 2 seeds, few epochs (a test)")
    parser.add_argument("--data-dir", default="data", help="dataset cache (default: data)")
    parser.add_argument(
        "--data-mirror", default=None, help="folder or URL with the raw files (default: $GAT_DATA_MIRROR)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="default: cpu (reproducible)")
    parser.add_argument(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        default=None,
        help="CPU threads per operation (default: $GAT_THREADS, else $OMP_NUM_THREADS, else chosen per run from its "
        "step's size and the CPUs other programs leave free)",
    )
    return parser


def parse_args(argv: list[str] | None) -> tuple:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 2 if args.quick else 5 if args.study else 10
    if args.quick and not args.study:
        parser.error("--quick belongs to --study attention")
    if args.layers is None:
        args.layers = "gat,gatv2,mean" if args.study else "gat,gatv2"
    datasets, layers = args.datasets.split(","), args.layers.split(",")
    for name, chosen, allowed in (("dataset", datasets, dataset_names()), ("layer", layers, tuple(LAYERS))):
        unknown = [value for value in chosen if value not in allowed]
        if unknown:
            parser.error(f"unknown {name} {', '.join(unknown)}: choose from {', '.join(allowed)}")
    try:
        choose_threads(1, 0, requested_threads(args.threads))
    except GATError as error:
        parser.error(str(error))
    return args, datasets, layers


def main(argv: list[str] | None = None) -> int:
    args, datasets, layers = parse_args(argv)
    from gat.reproduce.runner import run_command

    return run_command(args, datasets, layers, argv)
