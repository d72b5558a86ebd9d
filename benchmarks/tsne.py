"""Which t-SNE draws the embedding pictures: time and quality of each candidate on a trained Cora model's layers.

    python benchmarks/tsne.py                       # trains the paper's Cora model first (seed 0, ~15 s)
    python benchmarks/tsne.py --model models/binaries/<run>.pt --rounds 3

Every candidate maps the same features (the layers :func:`visualization.embeddings.embedding_figure` draws by
default: the last hidden layer and the logits, PCA to 50 dimensions first as the product does), in turn, A B C A B
C ..., so a change in machine load hits all alike. For each it prints the median seconds per map and the map's
quality against the reference (scikit-learn's TSNE with its defaults, the usual recipe):

- silhouette: the silhouette score by class of the 2-D map (-1 to 1, higher for tighter, better separated classes);
- 10-NN accuracy: how often a node's class is the majority of its 10 nearest neighbours in the map;
- clusters ARI: adjusted Rand index between k-means clusters (k = number of classes) of the map and of the
  reference map: 1 for the same clusters.

``ours`` is :func:`visualization.maps.tsne` as it is, on the threads it chooses (``--threads`` overrides), and
again on one thread, as the others run (scikit-learn's Barnes-Hut gradient has one thread).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.entry import run_main  # noqa: E402
from gat.errors import OneLineErrorParser, bounded_int  # noqa: E402
from gat.threads import MAX_THREADS  # noqa: E402
from gat.training.config import MAX_SEED  # noqa: E402
from visualization.embeddings import default_layers, layer_output  # noqa: E402
from visualization.maps import PCA_DIMENSIONS, tsne  # noqa: E402

Mapper = Callable[[np.ndarray, int], np.ndarray]


def reduced(features: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    if features.shape[1] <= PCA_DIMENSIONS:
        return features
    return PCA(PCA_DIMENSIONS, random_state=seed).fit_transform(features)


def sklearn_tsne(**settings) -> Mapper:
    def run(features: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.manifold import TSNE

        return TSNE(init="pca", random_state=seed, **settings).fit_transform(reduced(features, seed))

    return run


def open_tsne(**settings) -> Mapper:
    def run(features: np.ndarray, seed: int) -> np.ndarray:
        from openTSNE import TSNE

        return np.asarray(TSNE(initialization="pca", random_state=seed, **settings).fit(reduced(features, seed)))

    return run


def ours(threads: int | None = None) -> Mapper:
    def run(features: np.ndarray, seed: int) -> np.ndarray:
        if threads is None:
            return tsne(features, seed)
        with mock.patch.dict(os.environ, {"GAT_THREADS": str(threads)}):
            return tsne(features, seed)

    return run


CANDIDATES: dict[str, Mapper] = {
    "ours": ours(),
    "ours, 1 thread": ours(1),
    "scikit-learn, defaults (reference)": sklearn_tsne(),
    "scikit-learn, 500 iterations": sklearn_tsne(max_iter=500),
    "openTSNE, defaults (FFT)": open_tsne(n_jobs=1, negative_gradient_method="fft"),
    "openTSNE, defaults (Barnes-Hut)": open_tsne(n_jobs=1, negative_gradient_method="bh"),
}


def quality(points: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    classes = len(np.unique(labels))
    knn = KNeighborsClassifier(11).fit(points, labels)  # 11: each point is its own first neighbour
    neighbours = knn.kneighbors(points, return_distance=False)[:, 1:]
    votes = np.apply_along_axis(lambda row: np.bincount(labels[row], minlength=classes).argmax(), 1, neighbours)
    clusters = KMeans(classes, n_init=10, random_state=0).fit_predict(points)
    reference_clusters = KMeans(classes, n_init=10, random_state=0).fit_predict(reference)
    return (float(silhouette_score(points, labels)), float(np.mean(votes == labels)),
            float(adjusted_rand_score(reference_clusters, clusters)))  # fmt: skip


def trained_binary(model: str | None, data_dir: str) -> str:
    """``model``, or the binary of the paper's Cora model trained now (seed 0)."""
    from gat.training.config import TrainConfig
    from gat.training.trainer import train

    if model is not None:
        return model
    out = REPO / "runs" / "tsne-benchmark"
    config = TrainConfig(quiet=True, tensorboard=False, data_dir=data_dir, runs_dir=str(out / "runs"),
                         models_dir=str(out / "models"))  # fmt: skip
    return str(train(config).binary_path)


def trained_model(model: str | None, data_dir: str) -> object:
    from visualization.loading import load_trained

    return load_trained(trained_binary(model, data_dir), data_dir=data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a trained Cora binary (default: train the paper's model)")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--rounds", type=bounded_int(1), default=3, help="timed maps per candidate and layer")
    parser.add_argument("--threads", type=bounded_int(1, MAX_THREADS), help="threads for ours (default: its choice)")
    parser.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        os.environ["GAT_THREADS"] = str(args.threads)

    trained = trained_model(args.model, args.data_dir)
    labels = trained.graph.y.cpu().numpy()
    layers = default_layers(trained.inspection)
    features = {layer: layer_output(trained.inspection, layer).detach().double().numpy() for layer in layers}
    seconds: dict[tuple[str, int], list[float]] = {}
    maps: dict[tuple[str, int], np.ndarray] = {}
    for _ in range(args.rounds):
        for name, mapper in CANDIDATES.items():
            for layer in layers:
                start = time.perf_counter()
                maps[name, layer] = mapper(features[layer], args.seed)
                seconds.setdefault((name, layer), []).append(time.perf_counter() - start)

    reference = "scikit-learn, defaults (reference)"
    print(f"t-SNE of {trained.graph.name}'s layers ({trained.graph.num_nodes} nodes), median of {args.rounds} "
          f"rounds; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| t-SNE | layer | seconds per map | silhouette | 10-NN accuracy | clusters ARI vs reference |")
    print("|---|---|---|---|---|---|")
    for name in CANDIDATES:
        for layer in layers:
            silhouette, accuracy, ari = quality(maps[name, layer], labels, maps[reference, layer])
            print(f"| {name} | {layer} | {statistics.median(seconds[name, layer]):.2f} | {silhouette:.3f} | "
                  f"{accuracy:.3f} | {ari:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
