"""The runner behind ``python -m gat.reproduce``: each run of a table (`Job`) trained, saved and read back, and the
paper's table written.

Every run (dataset, layer, seed) is one `gat.training.trainer.train` with the dataset's preset, quiet and without
TensorBoard. Its result is written to ``<output>/runs/<dataset>_<layer>_seed<seed>.json`` the moment it
finishes (atomically), so an interrupted table resumes where it stopped: a finished run with the same settings is
read back, never redone. Then ``<output>/results.md`` gets the Markdown table — test accuracy (micro-F1 for PPI)
mean ± std, min, max, epochs and seconds per run, next to the published figures — then the test score each
model-selection rule (``--select``; `gat.training.config.SELECTION_RULES`) would have given, side by side: every run
records the test score at the epoch each rule chooses (from validation scores only), so the rules cost no
extra training. Last, for the transductive datasets, the attention entropy of each model side by side. A
dataset whose files are missing and cannot be downloaded is listed as "needs download" with the command to
run, not a crash.

The attention study (`gat.reproduce.attention`) trains on generated graphs through the same runner: `Job`,
`finished`, `run` and `run_jobs` are shared, so both tables save, resume and report progress alike.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from gat.data.registry import get_dataset
from gat.data.sbm import edge_homophily
from gat.errors import GATError, describe_os_error
from gat.io import ensure_writable, save_json, save_text
from gat.nn.analysis import attention_entropy, attention_homophily, kl_from_uniform, neighbourhood_sizes
from gat.nn.model import Inspection
from gat.threads import apply_thread_policy
from gat.training import checkpoints
from gat.training.allocator import keep_freed_memory, memory_errors_in_one_line
from gat.training.config import SELECTION_RULES, TrainConfig
from gat.training.loop import TrainingInterrupted, inspect_model
from gat.training.presets import preset_config, score_name
from gat.training.steps import load_graph
from gat.training.trainer import ENVIRONMENT_FIELDS, train
from gat.validate import ListOf, Number, Optional, check

# Settings that say where and how a run happens, not what it computes: they may differ when a table resumes.
LOCATION_FIELDS = (*ENVIRONMENT_FIELDS, "tensorboard")
# Per attention layer, what a run on one graph records (gat.validate schemas).
LAYER_ENTROPY = {"layer": Number(int, 0), "entropy": Number(float), "uniform": Number(float), "kl": Number(float)}
LAYER_CLASSES = {
    "layer": Number(int, 0),
    "same_class_share": Number(float, 0, 1),
    "uniform_same_class_share": Number(float, 0, 1),
    "mean_same": Optional((float, type(None))),  # nan, saved as null, where the graph has no such edge
    "mean_different": Optional((float, type(None))),
}
# A saved result, as `run` writes it: everything the table reads.
RESULT_SCHEMA = {
    "dataset": str,
    "layer": str,
    "seed": Number(int, 0),
    "test_score": Number(float, 0, 1),
    "val_score": Number(float, 0, 1),
    "score": str,
    "epochs": Number(int, 0),
    "best_epoch": Number(int, 0),
    "seconds": Number(float, 0),
    "run_id": str,
    "config": dict,
    "entropy": Optional(ListOf(LAYER_ENTROPY)),  # one graph's runs (results of older versions may lack these)
    "selections": Optional(dict),  # rule -> its epoch and test score
    "test_by_rule": Optional({rule: Number(float, 0, 1) for rule in SELECTION_RULES}),
    "graph": Optional(dict),  # a generated graph's settings (the attention study)
    "edge_homophily": Optional(Number(float, 0, 1)),
    "classes": Optional(ListOf(LAYER_CLASSES)),
}
# What the attention study reads of every run, besides the table's.
STUDY_SCHEMA = {**RESULT_SCHEMA, "entropy": ListOf(LAYER_ENTROPY), "classes": ListOf(LAYER_CLASSES),
                "edge_homophily": Number(float, 0, 1)}  # fmt: skip


_DEFAULTS = TrainConfig().to_dict()


@dataclass(frozen=True)
class Job:
    """One run of a table: its config, where its result goes, and for a generated graph the generator's settings
    (with the config, what the run computes: a saved result is reused only if both match)."""

    config: TrainConfig
    path: Path
    graph: dict = field(default_factory=dict)


def run_config(args, dataset: str, layer: str, seed: int, **overrides) -> TrainConfig:
    """The preset of ``dataset`` with ``layer``, ``seed`` and ``overrides`` (``--epochs`` wins over them);
    training files go under ``<output>/training/``."""
    training = Path(args.output) / "training"
    overrides = {**overrides, "epochs": args.epochs} if args.epochs is not None else overrides
    return preset_config(
        dataset,
        layer=layer,
        seed=seed,
        data_dir=args.data_dir,
        data_mirror=args.data_mirror,
        device=args.device,
        threads=args.threads,
        runs_dir=str(training / "runs"),
        models_dir=str(training / "models"),
        tensorboard=False,
        quiet=True,
        select=args.select,
        test_every_rule=True,
        **overrides,
    )


def result_path(output: str | Path, config: TrainConfig) -> Path:
    return Path(output) / "runs" / f"{config.dataset}_{config.layer}_seed{config.seed}.json"


def finished(job: Job, schema: dict = RESULT_SCHEMA) -> dict | None:
    """The saved result of this run if it exists and was made with the same settings, else None (run it).

    A file that is JSON but not a result (``schema``: a field missing or of the wrong type) is refused with one
    line: it is not silently redone over, nor half-used in the table."""
    try:
        record = json.loads(job.path.read_text())
    except (OSError, ValueError):  # missing or unreadable: atomic writes make the latter unlikely, but redo it
        return None
    source = f"{job.path} (delete it to redo this run)"
    check(record, schema, source)
    same_config = what_it_computes(record.get("config", {})) == what_it_computes(job.config.to_dict())
    if not same_config or record.get("graph", {}) != job.graph:
        return None
    layers = job.config.num_layers
    if any(len(record[key]) != layers for key in ("entropy", "classes") if key in record):
        raise GATError(f"{source}: 'entropy' and 'classes' need one entry per attention layer ({layers})")
    return record


def what_it_computes(config: dict) -> dict:
    """``config`` (a `TrainConfig.to_dict`) without the settings that say where and how a run happens: two runs
    with equal ones compute the same, so a saved result of one stands for the other. A setting that ``config``
    lacks (saved before the setting existed) counts as its default, which is what such a run computed."""
    return {key: value for key, value in {**_DEFAULTS, **config}.items() if key not in LOCATION_FIELDS}


def data_problem(config: TrainConfig) -> str | None:
    """None if the dataset's files are here (or can be fetched), else the one-line reason they cannot."""
    try:
        load_graph(config)
    except GATError as error:
        return str(error)
    return None


def entropy_by_layer(inspection: Inspection) -> list[dict[str, float]]:
    """Per layer, over nodes and heads: mean attention entropy, the mean entropy uniform attention over the same
    neighbourhoods would have (log degree), and the mean KL divergence from uniform, in nats."""
    num_nodes, edge_index = inspection.logits.shape[0], inspection.edge_index
    uniform = torch.log(neighbourhood_sizes(edge_index, num_nodes).double().clamp(min=1)).mean().item()
    return [
        {
            "layer": index,
            "entropy": attention_entropy(attention.double(), edge_index, num_nodes).mean().item(),
            "uniform": uniform,
            "kl": max(0.0, kl_from_uniform(attention, edge_index, num_nodes).mean().item()),  # >= 0 but for rounding
        }
        for index, attention in enumerate(inspection.attention)
    ]


def attention_classes(inspection: Inspection, labels: torch.Tensor) -> list[dict[str, float]]:
    """Per layer, averaged over heads (`gat.nn.analysis.attention_homophily`, self-loops left out): the mean share
    of a node's neighbour attention on same-class neighbours, the share uniform attention would give, and the mean
    coefficient on a same-class and on a different-class edge (nan where the graph has no such edge)."""
    rows = []
    for index, attention in enumerate(inspection.attention):
        measured = attention_homophily(attention, inspection.edge_index, labels)
        rows.append(
            {
                "layer": index,
                "same_class_share": measured.same_class_share.mean().item(),
                "uniform_same_class_share": measured.uniform_same_class_share,
                "mean_same": measured.mean_same.mean().item(),
                "mean_different": measured.mean_different.mean().item(),
            }
        )
    return rows


def run(job: Job) -> dict:
    """Train one run and return what the table needs (plus the config, to recognise it when resuming)."""
    config = job.config
    result = train(config)
    score = score_name(config.dataset)
    record = {
        "dataset": config.dataset,
        "layer": config.layer,
        "seed": config.seed,
        "test_score": result.metrics[f"test_{score}"],
        "val_score": result.metrics[f"val_{score}"],
        "score": score,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "test_by_rule": {rule: choice[f"test_{score}"] for rule, choice in result.selections.items()},
        "selections": result.selections,
        "seconds": result.training_seconds,
        "run_id": result.run_id,
        "config": config.to_dict(),
        "environment": checkpoints.environment(),
    }
    if job.graph:
        record["graph"] = job.graph
    if get_dataset(config.dataset).task == "transductive":  # entropy needs one graph's attention
        graph = load_graph(config)
        inspection = inspect_model(result.model, graph)
        record["entropy"] = entropy_by_layer(inspection)
        record["classes"] = attention_classes(inspection, graph.y)
        record["edge_homophily"] = edge_homophily(graph.edge_index, graph.y)
    return record


def run_jobs(
    jobs: list[Job], description: str, skip: frozenset[str] = frozenset(), schema: dict = RESULT_SCHEMA
) -> dict[Path, dict]:
    """Run every job without a saved result (`finished`, which checks it against ``schema``), saving each result
    atomically the moment it ends, with a progress bar; returns every job's result by path. ``skip``: datasets not
    to run (their files are missing).

    Raises GATError (TrainingInterrupted on Ctrl-C) with the finished runs saved: the same command resumes."""
    records = {job.path: finished(job, schema) for job in jobs}
    pending = [job for job in jobs if records[job.path] is None and job.config.dataset not in skip]
    done = sum(record is not None for record in records.values())
    with tqdm(total=done + len(pending), initial=done, unit="run", desc=description, dynamic_ncols=True) as bar:
        for job in pending:
            bar.set_postfix_str(f"{job.config.dataset} {job.config.layer} seed {job.config.seed}")
            records[job.path] = run(job)
            save_json(records[job.path], job.path)  # now: a later invocation will not redo this run
            bar.update(1)
    return {path: record for path, record in records.items() if record is not None}


def run_command(args, datasets: list[str], layers: list[str], argv: list[str] | None) -> int:
    """What ``python -m gat.reproduce`` does once its flags are checked; returns the exit code."""
    try:
        ensure_writable(args.output)  # fail fast, before the first run
        keep_freed_memory()  # an entry point, like training_script.py: same speed per run
        apply_thread_policy(0, args.threads)  # for loading and inspection; each run's epoch loop chooses for its step
        with memory_errors_in_one_line("try fewer --threads, or leave the largest dataset out of --datasets"):
            if args.study:
                from gat.reproduce.attention import study  # the study's graphs and figure load only when asked for

                return study(args, layers, argv)
            return reproduce(args, datasets, layers, argv)
    except TrainingInterrupted as error:  # Ctrl-C: finished runs are already saved
        print(f"error: {error}\nfinished runs are saved in {args.output}; run the same command to resume",
              file=sys.stderr)  # fmt: skip
        return error.exit_code
    except GATError as error:  # a bad saved result, an unwritable --output, a failed run
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a fault the project's writer did not see first: still one line
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 1


def reproduce(args, datasets: list[str], layers: list[str], argv: list[str] | None) -> int:
    """Run what is missing of the table, then write and print it; returns the exit code."""
    configs = [
        run_config(args, dataset, layer, seed) for dataset in datasets for layer in layers for seed in range(args.seeds)
    ]
    jobs = [Job(config, result_path(args.output, config)) for config in configs]
    missing = {}  # dataset -> why its files cannot be had
    for dataset in dict.fromkeys(job.config.dataset for job in jobs if finished(job) is None):
        problem = data_problem(next(job.config for job in jobs if job.config.dataset == dataset))
        if problem is not None:
            missing[dataset] = problem
    records = run_jobs(jobs, "reproduce", skip=frozenset(missing))
    text = results_markdown(list(records.values()), missing, args, argv)
    save_text(text, Path(args.output) / "results.md")
    print(text)
    print(f"wrote {Path(args.output) / 'results.md'}")
    return 0


def results_markdown(records: list[dict], missing: dict[str, str], args, argv: list[str] | None) -> str:
    """The results table, the entropy table and how they were made, as Markdown."""
    command = " ".join(["python -m gat.reproduce", *(argv if argv is not None else sys.argv[1:])])
    environment = checkpoints.environment()
    lines = [
        "# Reproducing the GAT paper",
        "",
        f"`{command}` — {args.seeds} seed(s) per row, torch {environment['torch']}, device {args.device}, "
        f"commit {environment['git_commit'][:12]}. Test accuracy (PPI: micro-F1) of the model kept by the "
        f"`{args.select}` rule; published = Veličković et al. (ICLR 2018), mean ± std.",
        "",
        "| dataset | model | runs | test score, mean ± std | min | max | epochs | seconds per run | published (GAT) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    datasets = list(dict.fromkeys(args.datasets.split(",")))
    for dataset in datasets:
        paper = get_dataset(dataset).published  # Veličković et al. (ICLR 2018), tables 2 and 3
        published = "{:.3f} ± {:.3f}".format(*paper) if paper else "—"
        for layer in dict.fromkeys(args.layers.split(",")):
            rows = [r for r in records if r["dataset"] == dataset and r["layer"] == layer]
            if rows:
                lines.append(_score_row(dataset, layer, rows, published if layer == "gat" else "—"))
            elif dataset in missing:
                fix = f"`python -m gat.reproduce --datasets {dataset}` where the internet is reachable"
                lines.append(f"| {dataset} | {layer} | 0 | needs download: {fix} | | | | | {published} |")
    lines += _rule_lines(records)
    lines += _entropy_lines(records)
    if missing:
        lines += ["", "Not run (files missing, no download possible here):", ""]
        lines += [f"- {dataset}: {reason}" for dataset, reason in missing.items()]
    return "\n".join(lines) + "\n"


def _score_row(dataset: str, layer: str, rows: list[dict], published: str) -> str:
    scores = [r["test_score"] for r in rows]
    epochs = statistics.mean(r["epochs"] for r in rows)
    seconds = statistics.mean(r["seconds"] for r in rows)
    return (
        f"| {dataset} | {layer} | {len(rows)} | **{mean_and_spread(scores)}** | {min(scores):.3f} | "
        f"{max(scores):.3f} | {epochs:.0f} | {seconds:.1f} | {published} |"
    )


def _rule_lines(records: list[dict]) -> list[str]:
    """Per dataset and model, the test score (mean ± std over runs) of the epoch each selection rule chooses."""
    scored = [r for r in records if "test_by_rule" in r]
    if not scored:
        return []
    lines = [
        "",
        "Test score by model-selection rule (each chooses an epoch of the same runs from validation scores only): "
        + "; ".join(f"{rule} = {meaning}" for rule, meaning in SELECTION_RULES.items())
        + ".",
        "",
        f"| dataset | model | runs | {' | '.join(SELECTION_RULES)} |",
        "|---|---|---|" + "---|" * len(SELECTION_RULES),
    ]
    for dataset, layer in dict.fromkeys((r["dataset"], r["layer"]) for r in scored):
        rows = [r for r in scored if r["dataset"] == dataset and r["layer"] == layer]
        cells = [mean_and_spread([r["test_by_rule"][rule] for r in rows]) for rule in SELECTION_RULES]
        lines.append(f"| {dataset} | {layer} | {len(rows)} | {' | '.join(cells)} |")
    return lines


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of scores over seeds (std 0 for one run)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def mean_and_spread(values: list[float], decimals: int = 3) -> str:
    """``"mean ± std"`` of scores over seeds, as every table of runs writes it."""
    mean, std = mean_and_std(values)
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _entropy_lines(records: list[dict]) -> list[str]:
    """The models side by side: per dataset and attention layer, entropy and KL from uniform averaged over
    nodes, heads and runs (one column per model), next to the entropy of uniform attention."""
    with_entropy = [r for r in records if r.get("entropy")]
    if not with_entropy:
        return []
    models = list(dict.fromkeys(r["layer"] for r in with_entropy))
    lines = [
        "",
        "Attention entropy in nats, mean over nodes, heads and runs. Uniform = the entropy of attending equally to "
        "every neighbour (log degree); KL = the mean divergence from uniform attention, 0 for a layer that averages.",
        "",
        f"| dataset | attention layer | uniform | {' | '.join(f'entropy {m}' for m in models)} | "
        f"{' | '.join(f'KL {m}' for m in models)} |",
        "|---|---|---|" + "---|" * 2 * len(models),
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in with_entropy):
        means = {model: _mean_by_layer([r["entropy"] for r in with_entropy if r["layer"] == model
                                        and r["dataset"] == dataset]) for model in models}  # fmt: skip
        for index, first in enumerate(next(rows for rows in means.values() if rows)):
            cells = [_cell(means[model], index, "entropy") for model in models]
            cells += [_cell(means[model], index, "kl") for model in models]
            lines.append(f"| {dataset} | {index} | {first['uniform']:.4f} | {' | '.join(cells)} |")
    return lines


def _mean_by_layer(runs: list[list[dict]]) -> list[dict[str, float]]:
    """The per-layer entropy statistics of several runs, averaged over the runs."""
    if not runs:
        return []
    return [{key: statistics.mean(run[index][key] for run in runs) for key in ("entropy", "uniform", "kl")}
            for index in range(len(runs[0]))]  # fmt: skip


def _cell(rows: list[dict[str, float]], index: int, key: str) -> str:
    return f"{rows[index][key]:.4f}" if index < len(rows) else "—"
