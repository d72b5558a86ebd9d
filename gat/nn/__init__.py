"""Neural network: the GAT and GATv2 layers, the model, and what can be read off a trained model's attention.

- `reference`  the layer in plain PyTorch autograd, as the paper writes it: read this first;
- `layers`     `GATLayer` and `GATv2Layer`, the fast path (same maths, fused kernels);
- `model`      `GAT`: a stack of layers, with `inspect` for every layer's output and attention;
- `analysis`   attention entropy, KL from uniform, neighbourhood sizes;
- `kernels`    the edge-list kernels the fast layers run on.
"""
