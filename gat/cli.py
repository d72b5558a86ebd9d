"""The training command: flags -> TrainConfig -> gat.training.trainer.train (``training_script.py``, ``python -m gat``).

    python training_script.py                       # the paper's GAT on Cora
    python training_script.py --dataset citeseer --seeds 10
    python training_script.py --dataset pubmed --layer gatv2   # PubMed's preset (8 output heads, lr 0.01, ...)
    python training_script.py --resume models/checkpoints/<run-id>.pt

Every flag of pytorch-GAT's training scripts is accepted as an alias, spelled as there: --num_of_epochs,
--patience_period, --weight_decay, --should_test, --force_cpu, --dataset_name, --batch_size (graphs per PPI batch:
--graphs-per-batch), --should_visualize, --enable_tensorboard, --console_log_freq, --checkpoint_freq. Run with
--help for every flag.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import fields, replace
from typing import Any

# Nothing imported here imports torch: --help, --version and a flag error answer at once; torch comes after parsing.
from gat import __version__
from gat.data.registry import dataset_names, get_dataset
from gat.errors import GATError, OneLineErrorParser, bounded_int, describe_os_error
from gat.threads import MAX_THREADS, THREADS_VARIABLE, apply_thread_policy, requested_threads
from gat.training.config import LAYERS, MAX_SEED, SELECTION_RULES, TrainConfig
from gat.training.presets import describe_presets, preset_config, score_label, score_name

DEFAULTS = TrainConfig()


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Show a flag's default in --help (a training setting's: `TrainConfig`'s), unless there is nothing to say
    (None, False, empty), the help states it already, or the flag is an alias that takes no value; keep the
    epilog's table of presets as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = getattr(DEFAULTS, action.dest, None) if action.default is argparse.SUPPRESS else action.default
        alias = action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction)
        nothing = default is None or default is False or default == ""
        if nothing or alias or "default" in text:
            return text
        return f"{text} (default: {default})"


def heads_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 8,1, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    # A training setting's flag has no default here (SUPPRESS): the parsed namespace holds exactly the settings
    # given, which win over the dataset's preset and must agree with a checkpoint being resumed (given_fields).
    # The other flags name their defaults.
    parser = OneLineErrorParser(
        description="Train a Graph Attention Network (defaults: the GAT paper's Cora setup).",
        epilog="dataset presets (the papers' settings; a flag given explicitly wins):\n" + describe_presets(),
        formatter_class=DefaultsFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=version_text())
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        "--dataset_name",
        "--dataset-name",
        type=str.lower,
        choices=dataset_names(),
        help="graph to train on (any case)",
    )
    data.add_argument("--data-dir", help="dataset cache (raw files, processed .npz)")
    data.add_argument(
        "--data-mirror",
        help="folder or URL holding the Planetoid raw files (default: $GAT_DATA_MIRROR, else GitHub)",
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--layer", choices=tuple(LAYERS), help="gat, gatv2 (dynamic attention), or mean (uniform attention: a baseline)"
    )
    model.add_argument("--num-layers", type=int, help=f"attention layers (default {DEFAULTS.num_layers}, or preset)")
    model.add_argument("--hidden", type=int, help=f"features per head in hidden layers (default {DEFAULTS.hidden})")
    model.add_argument(
        "--heads",
        type=heads_list,
        help="heads per layer, comma-separated (default: 8 per hidden layer, 1 output head, or preset)",
    )
    model.add_argument(
        "--dropout", type=float, help=f"on layer inputs, attention and aggregated features (default {DEFAULTS.dropout})"
    )
    model.add_argument(
        "--skip-connection",
        action=argparse.BooleanOptionalAction,
        help="add each layer's input to its output (default: off, or preset)",
    )

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument(
        "--epochs",
        "--num_of_epochs",
        "--num-of-epochs",
        type=int,
        help=f"at most (default {DEFAULTS.epochs}; when resuming, the run's own)",
    )
    optimisation.add_argument(
        "--patience",
        "--patience_period",
        "--patience-period",
        type=int,
        help="stop after this many epochs without val loss or val accuracy improving",
    )
    optimisation.add_argument(
        "--select",
        choices=tuple(SELECTION_RULES),
        help="which epoch's model to keep, from validation scores: "
        + "; ".join(f"{rule}: {meaning}" for rule, meaning in SELECTION_RULES.items()),
    )
    optimisation.add_argument("--lr", type=float, help=f"Adam learning rate (default {DEFAULTS.lr}, or preset)")
    optimisation.add_argument(
        "--weight-decay", "--weight_decay", type=float, help=f"L2 penalty (default {DEFAULTS.weight_decay}, or preset)"
    )
    optimisation.add_argument("--seed", type=int, help="same seed on CPU = same numbers")
    optimisation.add_argument(
        "--seeds", type=int, default=1, help="train this many runs (seeds seed, seed+1, ...) and print mean ± std"
    )
    optimisation.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto = cuda if available")
    optimisation.add_argument(
        "--force_cpu", "--force-cpu", dest="device", action="store_const", const="cpu", help="alias of --device cpu"
    )
    optimisation.add_argument(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        help=f"CPU threads per operation (default: ${THREADS_VARIABLE}, else $OMP_NUM_THREADS, else chosen from the "
        "step's size and the CPUs other programs leave free, re-checked as it trains)",
    )
    optimisation.add_argument(
        "--cuda-graphs",
        action=argparse.BooleanOptionalAction,
        help="on a GPU, replay each full-batch step from a CUDA graph (--no-cuda-graphs: launch every kernel)",
    )

    minibatch = parser.add_argument_group("mini-batch and multi-process training (see docs/scaling.md)")
    minibatch.add_argument(
        "--fanouts",
        type=heads_list,
        help="train on sampled neighbourhoods: in-neighbours kept per node, one count per layer, the first layer's "
        "first, e.g. 10,10 (default: full-batch)",
    )
    minibatch.add_argument(
        "--batch-size", type=int, help="seed nodes per step (per process); for PPI's graphs see --graphs-per-batch"
    )
    minibatch.add_argument(
        "--graphs-per-batch",
        "--batch_size",
        type=int,
        help=f"PPI: whole training graphs per step (pytorch-GAT's --batch_size; default {DEFAULTS.graphs_per_batch})",
    )
    minibatch.add_argument(
        "--distributed",
        action="store_true",
        help="one of several processes started by torchrun: torchrun --nproc_per_node=2 training_script.py "
        "--distributed --fanouts 10,10 ...",
    )

    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--runs-dir", help="TensorBoard logs and metrics.json")
    outputs.add_argument("--models-dir", help="checkpoints/ and binaries/ go here")
    outputs.add_argument("--checkpoint-freq", "--checkpoint_freq", type=int, help="in epochs")
    outputs.add_argument(
        "--console-log-freq",
        "--console_log_freq",
        type=int,
        help="log line every N epochs when no progress bar is shown",
    )
    outputs.add_argument(
        "--entropy-log-freq",
        type=int,
        help="attention-entropy histograms and mean KL from uniform attention to TensorBoard every N epochs "
        "(and once before training)",
    )
    outputs.add_argument(
        "--run-name",
        help="name the run: runs/<dataset>_<run-name>_<date>-<time>_<random> (letters, digits, . _ = + -)",
    )
    outputs.add_argument(
        "--resume",
        metavar="PATH",
        default=None,
        help="continue the run saved in this checkpoint (its config is reused; --epochs, the folders, --device, "
        "--tensorboard, --test and the log/checkpoint frequencies may change; any other flag given must match it)",
    )
    outputs.add_argument(
        "--test",
        "--should_test",
        "--should-test",
        action=argparse.BooleanOptionalAction,
        help="evaluate the best model on the test split at the end",
    )
    outputs.add_argument(
        "--tensorboard",
        "--enable_tensorboard",
        "--enable-tensorboard",
        action=argparse.BooleanOptionalAction,
        help="write TensorBoard event files",
    )
    outputs.add_argument(
        "--visualize-before",
        "--should_visualize",
        "--should-visualize",
        dest="should_visualize",
        action="store_true",
        default=False,
        help="first draw the dataset's degree pictures, whole-graph drawing and summary into --figures-dir",
    )
    outputs.add_argument("--figures-dir", default="figures", help="where --visualize-before writes")
    outputs.add_argument(
        "--visualize-after",
        action="store_true",
        default=False,
        help="then draw attention, entropy and t-SNE into runs/<run-id>/figures (and TensorBoard)",
    )
    outputs.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def version_text() -> str:
    """``gat 0.1.0 (torch 2.x, Python 3.x)``, read from the installed packages' metadata without importing torch."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    return f"gat {__version__} (torch {torch_version}, Python {sys.version.split()[0]})"


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The `TrainConfig` fields given on the command line, by name: the parser leaves out every one not given."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Flags -> TrainConfig: the dataset's preset, then the flags given explicitly on top; invalid values raise
    GATError with a one-line reason."""
    values = given_fields(args)
    dataset = values.get("dataset", DEFAULTS.dataset)
    preset_heads = get_dataset(dataset).preset.get("heads", DEFAULTS.heads)
    if "heads" not in values and values.get("num_layers", len(preset_heads)) != len(preset_heads):
        values["heads"] = (8,) * (values["num_layers"] - 1) + (1,)  # a new depth: 8 heads per hidden layer
    return preset_config(dataset, **values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except GATError as error:
        parser.error(str(error))
    if args.seeds < 1:
        parser.error(f"seeds must be >= 1, got {args.seeds}")
    if config.seed + args.seeds - 1 > MAX_SEED:
        parser.error(f"seeds must be <= {MAX_SEED - config.seed + 1} so that the last seed is <= {MAX_SEED}")
    if args.resume is not None and args.seeds > 1:
        parser.error("--resume continues one run: it cannot be combined with --seeds")
    given = given_fields(args)
    if args.resume is None:
        if "graphs_per_batch" in given and get_dataset(config.dataset).task != "inductive":
            parser.error(f"--graphs-per-batch is for datasets of many graphs (ppi), not {config.dataset}")
        if "batch_size" in given and not config.fanouts:
            whole_graphs = " (whole PPI graphs per step: --graphs-per-batch)" if config.dataset == "ppi" else ""
            parser.error(f"--batch-size is the seed nodes of a mini-batch step: give --fanouts too{whole_graphs}")
    try:
        requested_threads(config.threads)  # a malformed $GAT_THREADS is a usage error too
    except GATError as error:
        parser.error(str(error))

    if config.threads is not None:
        os.environ[THREADS_VARIABLE] = str(config.threads)  # the flag is the variable: the pictures' t-SNE reads it
    try:
        return run_command(args, config, tuple(given))
    except OSError as error:  # anything the project's writer did not see first: still one line
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 1


def run_command(args: argparse.Namespace, config: TrainConfig, explicit: tuple[str, ...]) -> int:
    """Train (and draw) as the parsed flags say; returns the exit code."""
    from gat.training.allocator import keep_freed_memory, memory_errors_in_one_line  # after parsing: fast --help
    from gat.training.loop import TrainingInterrupted

    keep_freed_memory()  # reuse freed tensors' memory rather than page-fault fresh pages every step
    # One thread (or the requested count) for loading and pictures: small operations. The epoch loop chooses
    # again from the size of its step (gat.threads).
    apply_thread_policy(0, config.threads, honour_omp=not config.distributed)

    try:
        with memory_errors_in_one_line():  # a failed allocation anywhere: one line with what to try
            train_and_draw(args, config, explicit)
    except TrainingInterrupted as interruption:
        print(interruption, file=sys.stderr)
        return interruption.exit_code
    except GATError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def train_and_draw(args: argparse.Namespace, config: TrainConfig, explicit: tuple[str, ...]) -> None:
    """The dataset's pictures (--visualize-before), the run or runs, then the trained models' pictures
    (--visualize-after)."""
    from gat.training.steps import load_graph
    from gat.training.trainer import train

    if args.should_visualize:
        from gat.io import ensure_writable
        from visualization.reports import write_dataset_report

        ensure_writable(args.figures_dir)  # before the dataset is loaded and drawn
        report(write_dataset_report(load_graph(config), args.figures_dir), config.quiet)
    if args.seeds == 1:
        results = [train(config, resume=args.resume, override=explicit)]
    else:
        results = run_seeds(config, args.seeds)
    if args.visualize_after:
        from visualization.reports import visualize_run

        for result in results:
            report(visualize_run(result.binary_path, config.data_dir, config.data_mirror, config.tensorboard),
                   config.quiet)  # fmt: skip


def report(paths: list, quiet: bool) -> None:
    """Print the files the visualization wrote."""
    if not quiet:
        print("\n".join(f"wrote {path}" for path in paths))


def run_seeds(config: TrainConfig, num_seeds: int) -> list:
    """Train with ``num_seeds`` consecutive seeds, print each result and the mean ± std; returns the results."""
    from gat.training.trainer import train

    results = []
    score, label = score_name(config.dataset), score_label(config.dataset)
    for offset in range(num_seeds):
        result = train(replace(config, seed=config.seed + offset, quiet=True))
        results.append(result)
        print(
            f"seed {config.seed + offset}: best epoch {result.best_epoch}, "
            f"val {label} {result.metrics[f'val_{score}']:.4f}, "
            f"test {label} {result.metrics.get(f'test_{score}', float('nan')):.4f}, "
            f"{result.epochs} epochs, {result.training_seconds:.1f} s",
            flush=True,
        )
    for key in (f"val_{score}", f"test_{score}"):
        values = [r.metrics[key] for r in results if key in r.metrics]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(
                f"{config.dataset} {key.replace('_', ' ')} over {len(values)} seeds: "
                f"{statistics.mean(values):.4f} ± {spread:.4f} (min {min(values):.4f}, max {max(values):.4f})"
            )
    return results


if __name__ == "__main__":
    sys.exit(main())
