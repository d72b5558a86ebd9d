"""The fast path's edge-list kernels, each checked against a plain float64 reference in the tests.

- `neighbourhoods`  edges grouped by target node (CSR order), segment sums, the aggregation layout;
- `ops`             fused GAT attention (scores, neighbourhood softmax, dropout, aggregation), dropout;
- `projection`      ``x @ W^T`` for dense and sparse CSR inputs, with the weight gradient in the fast order.

`docs/design.md` says why each non-obvious choice here exists and what it measurably gains.
"""
