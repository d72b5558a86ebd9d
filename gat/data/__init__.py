"""Data: the `Graph` every model reads, the dataset registry, and the loaders behind it.

- `graph`        the one data object (features, labels, edge list, split masks);
- `registry`     one table of datasets (loader, task, metric, preset, published result): `load_dataset`;
- `planetoid`    Cora, CiteSeer, PubMed from their raw files, parsed as the GCN/GAT papers did, cached;
- `ppi`          the 24 protein graphs of the inductive task, read from their archive without pickle;
- `synthetic`    seeded stochastic-block-model graphs with sparse features, for tests and benchmarks;
- `sbm`          the attention study's graphs: an SBM with Gaussian features, few clean among many noisy neighbours;
- `download`     verified (SHA-256), atomic downloads from the public home or a mirror;
- `safe_pickle`  the restricted unpickler for Planetoid's raw pickles.
"""
