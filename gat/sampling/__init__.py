"""Graphs too big for one step: sampled neighbourhoods for mini-batch training, exact layer-wise inference.

- `sampler`    `NeighbourSampler`: per-layer fan-outs, the receptive field of a batch of seed nodes;
- `layerwise`  every node's output, one layer at a time over the whole graph, in bounded memory.
"""
