"""Ways of keeping a model beyond `--select`'s four, measured side by side on the same runs.

    python benchmarks/selection_rules.py --datasets cora,citeseer --seeds 20 --output results/selection-rules
    python benchmarks/selection_rules.py --datasets citeseer --setting weight-decay-1e-3 --seeds 50

Every run is the dataset's preset GAT (the paper's settings, or with ``--setting`` one of ``tuning.py``'s one-change
settings), trained with the paper's early stopping, exactly as ``python -m gat.reproduce`` trains it (same seeds, same
numbers). After every epoch the model is also scored on the test nodes, for this comparison only: each candidate
below keeps a model from validation scores alone.

- ``paper``, ``val-loss``, ``val-acc``, ``last``: the rules of ``--select`` (`gat.training.config.SELECTION_RULES`).
- ``smoothed-val-acc``: the epoch whose validation accuracy averaged with the 4 epochs before it is highest (500
  validation nodes make a noisy score; a mean over neighbouring epochs is a steadier one).
- ``ema-0.9``, ``ema-0.99``: an exponential moving average of the weights, ``w̄ ← d·w̄ + (1 - d)·w`` after every
  step (Polyak averaging), kept at the epoch the paper's rule picks from the average's own validation scores.
- ``average-3``, ``average-10``: the weights averaged over the last 3 (10) epochs the paper's rule chose (stochastic
  weight averaging over the good epochs).
- ``ensemble-3``, ``ensemble-10``: the class probabilities of those epochs' models averaged (an ensemble: 3 or 10
  models to keep and run).
- ``best-of-3``, ``best-of-5``: of 3 (5) runs of consecutive seeds, the model (kept by the paper's rule) of highest
  validation accuracy, ties to the lower validation loss: restarts chosen on validation, 3 (5) times the training.
- ``ensemble-of-3``, ``ensemble-of-5``: the class probabilities of those runs' models averaged.

A restart candidate scores once per group of seeds (seeds 0–4, 5–9, ... for 5), so 10 of its scores take 50 seeds.

With ``--against`` another setting's runs are trained (or read back) on the same seeds, and a second table gives
each candidate's test accuracy minus theirs, seed by seed (group by group for a restart candidate).

Runs are saved one JSON each under ``<output>/<setting>/runs/`` and not redone while their settings stay the same
(resumable; a changed ``--epochs`` makes new runs, as in ``gat.reproduce``). The summary gives test accuracy, mean ±
std, on the first half of the seeds, on the second and on all (a restart candidate: over its groups that lie in them): a
candidate that looks better on one half by chance should not on the other.
"""

from __future__ import annotations

import copy
import statistics
import sys
from collections import deque
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: `gat` imports

from benchmarks.entry import run_main  # noqa: E402
from benchmarks.trained_runs import SETTINGS, add_run_arguments, one_graph_datasets, paired_difference  # noqa: E402
from gat.data.graph import Graph  # noqa: E402
from gat.errors import GATError, OneLineErrorParser, bounded_int  # noqa: E402
from gat.io import save_json  # noqa: E402
from gat.reproduce.runner import Job, finished, mean_and_spread, run_config  # noqa: E402
from gat.training.config import MAX_SEED, SELECTION_RULES, TrainConfig  # noqa: E402
from gat.training.fullbatch import FullBatchRun  # noqa: E402
from gat.training.loop import run_epochs  # noqa: E402
from gat.training.selection import EarlyStopping  # noqa: E402
from gat.training.steps import load_graph, split_metrics  # noqa: E402
from gat.validate import ListOf, Number  # noqa: E402

EMA_DECAYS = (0.9, 0.99)
AVERAGED = (3, 10)  # how many of the paper rule's last choices are averaged or ensembled
SMOOTHING = 5  # epochs in the smoothed validation accuracy
RESTARTS = (3, 5)  # runs per restart candidate
# The paper's model's class probabilities and the labels on one split's nodes (rows: nodes).
SPLIT_SCHEMA = {"probabilities": ListOf(ListOf(Number(float, 0, 1))), "labels": ListOf(Number(int, 0))}
RUN_CANDIDATES = (
    *SELECTION_RULES,
    "smoothed-val-acc",
    *(f"ema-{decay}" for decay in EMA_DECAYS),
    *(f"average-{k}" for k in AVERAGED),
    *(f"ensemble-{k}" for k in AVERAGED),
)
RESTART_CANDIDATES = (*(f"best-of-{k}" for k in RESTARTS), *(f"ensemble-of-{k}" for k in RESTARTS))
CANDIDATES = (*RUN_CANDIDATES, *RESTART_CANDIDATES)
# A saved run, as `run` writes it (gat.validate): the settings it was made with and what the summary reads, every
# candidate of one run included.
RUN_SCHEMA = {
    "dataset": str,
    "seed": Number(int, 0),
    "epochs": Number(int, 0),
    "config": dict,
    "candidates": dict.fromkeys(RUN_CANDIDATES, dict.fromkeys(("val_accuracy", "test_accuracy"), Number(float, 0, 1))),
    "kept": {"val": SPLIT_SCHEMA, "test": SPLIT_SCHEMA},
}


class FollowedRun(FullBatchRun):
    """A full-batch run that also scores, after every epoch, the model and its moving averages on the validation
    and test nodes, and keeps the weights of the last epochs the paper's rule chose."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shadow = copy.deepcopy(self.model)  # evaluates averaged weights without touching the trained model
        self.scores: list[dict[str, float]] = []  # per epoch: val and test loss and accuracy
        self.averages: dict[float, dict[str, torch.Tensor]] = {}
        self.average_scores: dict[float, list[dict[str, float]]] = {decay: [] for decay in EMA_DECAYS}
        self.chosen: deque[dict[str, torch.Tensor]] = deque(maxlen=max(AVERAGED))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        record = super().train_epoch(epoch)
        if "val_loss" not in record:  # a non-finite loss: run_epochs stops the run
            return record
        weights = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        self.scores.append(metrics(self.probabilities(weights), self.graph))
        if self.stopper.choices["paper"][0] == epoch:
            self.chosen.append(weights)
        for decay in EMA_DECAYS:
            average = self.averages.get(decay)
            self.averages[decay] = weights if average is None else {
                name: decay * average[name] + (1 - decay) * value for name, value in weights.items()
            }  # fmt: skip
            self.average_scores[decay].append(metrics(self.probabilities(self.averages[decay]), self.graph))
        return record

    @torch.no_grad()
    def probabilities(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class probabilities ``[N, C]`` of the model with ``weights``, in eval mode."""
        self.shadow.load_state_dict(weights)
        return torch.softmax(self.shadow.eval()(self.graph.x, self.graph.edge_index), dim=-1)

    def candidates(self) -> dict[str, dict[str, float]]:
        """Per candidate: the validation and test accuracy of the model it keeps."""
        kept = {rule: self.scores[int(epoch) - 1] for rule, (epoch, _, _) in self.stopper.choices.items()}
        kept["smoothed-val-acc"] = self.scores[choose(smoothed(self.scores), "val-acc")]
        for decay, scores in self.average_scores.items():
            kept[f"ema-{decay}"] = scores[choose(scores, "paper")]
        for k in AVERAGED:
            last = list(self.chosen)[-k:]
            averaged = {name: torch.stack([w[name] for w in last]).mean(0) for name in last[0]}
            kept[f"average-{k}"] = metrics(self.probabilities(averaged), self.graph)
            ensemble = torch.stack([self.probabilities(w) for w in last]).mean(0)
            kept[f"ensemble-{k}"] = metrics(ensemble, self.graph)
        return {
            name: {"val_accuracy": s["val_accuracy"], "test_accuracy": s["test_accuracy"]} for name, s in kept.items()
        }

    def kept(self) -> dict[str, dict[str, list]]:
        """The paper's model's class probabilities (6 decimals) and the labels on the validation and test nodes."""
        probabilities = self.probabilities(self.best_state)
        return {
            split: {
                "probabilities": probabilities[mask].double().round(decimals=6).tolist(),
                "labels": self.graph.y[mask].tolist(),
            }
            for split, mask in (("val", self.graph.val_mask), ("test", self.graph.test_mask))
        }


def metrics(probabilities: torch.Tensor, graph: Graph) -> dict[str, float]:
    """Validation and test loss and accuracy of class probabilities (the loss is cross-entropy on their log)."""
    return split_metrics(probabilities.clamp_min(1e-30).log(), graph, ("val", "test"))


def smoothed(scores: list[dict[str, float]]) -> list[dict[str, float]]:
    """``scores``, each epoch's validation accuracy replaced by its mean over the ``SMOOTHING`` epochs ending there."""
    return [
        {**epoch, "val_accuracy": statistics.mean(s["val_accuracy"] for s in scores[max(0, i + 1 - SMOOTHING) : i + 1])}
        for i, epoch in enumerate(scores)
    ]


def choose(scores: list[dict[str, float]], rule: str) -> int:
    """The index of the epoch ``rule`` (one of SELECTION_RULES) keeps, `EarlyStopping` replayed over ``scores``."""
    stopper = EarlyStopping(patience=len(scores) + 1, select=rule)
    for epoch, epoch_scores in enumerate(scores, start=1):
        stopper.update(epoch, epoch_scores["val_loss"], epoch_scores["val_accuracy"])
    return stopper.best_epoch - 1


def run(config: TrainConfig) -> dict:
    """Train the run of ``config``, following every candidate; the record saved for it."""
    followed = FollowedRun(config, load_graph(config), torch.device(config.device), None, "")
    result = run_epochs(followed, torch.device(config.device))
    return {"dataset": config.dataset, "seed": config.seed, "epochs": result.epochs, "config": config.to_dict(),
            "candidates": followed.candidates(), "kept": followed.kept()}  # fmt: skip


def saved_run(path: Path, config: TrainConfig) -> dict | None:
    """The run saved at ``path`` if it was made with ``config``'s settings, else None (run it): as `gat.reproduce`
    reads its own (`finished`), and a reused run's kept probabilities must fit its labels (else one line)."""
    record = finished(Job(config, path), RUN_SCHEMA)
    for split, kept in (record or {}).get("kept", {}).items():
        probabilities, labels = kept["probabilities"], kept["labels"]
        widths = {len(row) for row in probabilities}
        if len(probabilities) != len(labels) or len(widths) != 1 or max(labels, default=0) >= min(widths):
            raise GATError(f"{path} (delete it to redo this run): 'kept.{split}' must hold one row of class "
                           "probabilities per label")  # fmt: skip
    return record


def restart_score(group: list[dict], candidate: str) -> float:
    """Test accuracy of ``candidate`` (``best-of-k`` or ``ensemble-of-k``) over ``group``, the k runs of one dataset
    on different seeds."""
    if candidate.startswith("best-of-"):

        def validation(record: dict) -> tuple[float, float]:  # accuracy, then lower loss, as --select val-acc
            val = record["kept"]["val"]
            loss = torch.nn.functional.nll_loss(
                torch.tensor(val["probabilities"]).clamp_min(1e-30).log(), torch.tensor(val["labels"])
            )
            return record["candidates"]["paper"]["val_accuracy"], -loss.item()

        return max(group, key=validation)["candidates"]["paper"]["test_accuracy"]
    ensemble = torch.stack([torch.tensor(r["kept"]["test"]["probabilities"]) for r in group]).mean(0)
    return (ensemble.argmax(1) == torch.tensor(group[0]["kept"]["test"]["labels"])).double().mean().item()


def scores(runs: list[dict], dataset: str, seeds: range, candidate: str) -> list[float]:
    """The test accuracies ``candidate`` gets on ``dataset`` with ``seeds``: one per run, or one per group of
    consecutive seeds ``[g·k, g·k + k)`` that lies in ``seeds`` for a restart candidate of k runs."""
    by_seed = {r["seed"]: r for r in runs if r["dataset"] == dataset and r["seed"] in seeds}
    if candidate in RUN_CANDIDATES:
        return [by_seed[seed]["candidates"][candidate]["test_accuracy"] for seed in sorted(by_seed)]
    k = int(candidate.rsplit("-", 1)[1])
    starts = range(-(-seeds.start // k) * k, seeds.stop - k + 1, k)  # first seed of each group inside ``seeds``
    return [restart_score([by_seed[seed] for seed in range(start, start + k)], candidate) for start in starts]


def summary(runs: list[dict], datasets: list[str], seeds: int) -> str:
    """Markdown: test accuracy (mean ± std) of every candidate, per dataset, on each half of the seeds and on all."""
    half = seeds // 2
    groups = [range(half), range(half, seeds), range(seeds)] if half else [range(seeds)]  # one seed: no halves
    columns = [(dataset, group) for dataset in datasets for group in groups]
    header = " | ".join(f"{dataset} seeds {group.start}–{group.stop - 1}" for dataset, group in columns)
    lines = [f"| candidate | {header} |", "|---|" + "---|" * len(columns)]
    for candidate in CANDIDATES:
        cells = []
        for dataset, group in columns:
            values = scores(runs, dataset, group, candidate)
            cells.append(mean_and_spread(values) if values else "–")
        lines.append(f"| {candidate} | {' | '.join(cells)} |")
    return "\n".join(lines)


def spread(runs: list[dict], dataset: str) -> str:
    """One line on how much one run's score depends on its seed, and how alike different seeds' models are: the
    paper rule's mean and its standard error, its means over blocks of 10 seeds, how often two runs' test predictions
    agree, and the share of test nodes every run gets wrong (no ensemble of these runs can get them right)."""
    runs = sorted((r for r in runs if r["dataset"] == dataset), key=lambda r: r["seed"])
    accuracies = [r["candidates"]["paper"]["test_accuracy"] for r in runs]
    line = f"{dataset}, paper rule over {len(runs)} seeds: {statistics.mean(accuracies):.3f}"
    if len(runs) < 2:
        return line
    line += (
        f" ± {statistics.stdev(accuracies):.3f} (standard error {statistics.stdev(accuracies) / len(runs) ** 0.5:.4f})"
    )
    blocks = [statistics.mean(accuracies[i : i + 10]) for i in range(0, len(runs) - 9, 10)]
    predictions = torch.stack([torch.tensor(r["kept"]["test"]["probabilities"]).argmax(1) for r in runs])
    right = predictions == torch.tensor(runs[0]["kept"]["test"]["labels"])
    agree = (predictions[:, None] == predictions[None]).double().mean(-1)  # [runs, runs]
    pairs = (agree.sum() - agree.diagonal().sum()) / (len(runs) * (len(runs) - 1))
    return (
        f"{line}; means of 10 seeds: {', '.join(f'{m:.3f}' for m in blocks) or '–'}; two runs' test predictions agree "
        f"on {pairs:.3f} of the nodes; {(~right.any(0)).double().mean():.3f} of the test nodes are wrong in every run"
    )


def trained_runs(args, datasets: list[str], setting: str) -> list[dict]:
    """The runs of ``setting`` on ``datasets`` with seeds 0 to ``args.seeds`` - 1: read back where saved with the
    same settings, else trained and saved."""
    runs = []
    for dataset in datasets:
        for seed in range(args.seeds):
            config = run_config(args, dataset, "gat", seed, **SETTINGS[setting])  # as gat.reproduce trains it
            path = Path(args.output) / setting / "runs" / f"{dataset}_seed{seed}.json"
            record = saved_run(path, config)
            if record is None:
                record = run(config)
                save_json(record, path)
                print(f"{path.name}: done", flush=True)
            runs.append(record)
    return runs


def comparison(runs: list[dict], baseline: list[dict], datasets: list[str], seeds: int, names: tuple[str, str]) -> str:
    """Markdown: per candidate and dataset, the test accuracy of ``runs`` minus ``baseline``'s on the same seeds
    (same groups for a restart candidate), paired: mean ± standard error, and how many pairs are better and worse."""
    lines = [f"| candidate | {' | '.join(f'{d}: {names[0]} − {names[1]}' for d in datasets)} |",
             "|---|" + "---|" * len(datasets)]  # fmt: skip
    for candidate in CANDIDATES:
        cells = []
        for dataset in datasets:
            values, base = (scores(r, dataset, range(seeds), candidate) for r in (runs, baseline))
            if not values:
                cells.append("–")
                continue
            difference, error, better, worse = paired_difference(values, base)
            cells.append(f"{difference:+.3f} ± {error:.3f} ({better} better, {worse} worse)")
        lines.append(f"| {candidate} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="cora,citeseer")
    parser.add_argument("--seeds", type=bounded_int(1, MAX_SEED), default=20, help="seeds 0 to N-1 (default 20)")
    parser.add_argument("--setting", choices=SETTINGS, default="paper", help="the paper's (default) or one change")
    parser.add_argument("--against", choices=SETTINGS, default=None, help="also this setting, compared seed by seed")
    parser.add_argument("--output", default="results/selection-rules")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.against == args.setting:
        parser.error(f"--against {args.against} is the setting itself")
    datasets = one_graph_datasets(args.datasets)  # a GATError is one line: run_main
    runs = trained_runs(args, datasets, args.setting)
    baseline = trained_runs(args, datasets, args.against) if args.against else None
    print(summary(runs, datasets, args.seeds))
    print("\n".join(["", *(spread(runs, dataset) for dataset in datasets)]))
    if baseline is not None:
        print(f"\n{comparison(runs, baseline, datasets, args.seeds, (args.setting, args.against))}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
