"""The graph object every part of the project passes around."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Graph:
    """A node-classification graph.

    Conventions (used everywhere in this project):

    * ``edge_index`` is ``int64 [2, E]``; ``edge_index[0]`` is the **source** node j and ``edge_index[1]`` the
      **target** node i of each edge, and messages flow source -> target (node i aggregates over its in-edges).
      An undirected graph stores both directions of every edge; there are no self-loops and no duplicates
      (the GAT layer adds self-loops itself).
    * ``x`` is ``float32 [N, F]``, dense or a torch sparse (CSR) tensor; ``y`` is ``int64 [N]``.
    * ``train_mask``, ``val_mask``, ``test_mask`` are ``bool [N]`` and pairwise disjoint.
    """

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_classes: int
    name: str

    @property
    def num_nodes(self) -> int:
        return self.y.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    @property
    def num_edges(self) -> int:
        """Number of directed edges (an undirected edge counts twice)."""
        return self.edge_index.shape[1]

    def to(self, device: torch.device | str) -> Graph:
        """A copy with every tensor on ``device``."""
        return replace(
            self,
            x=self.x.to(device),
            y=self.y.to(device),
            edge_index=self.edge_index.to(device),
            train_mask=self.train_mask.to(device),
            val_mask=self.val_mask.to(device),
            test_mask=self.test_mask.to(device),
        )

    def dense_x(self) -> torch.Tensor:
        """Features as a dense tensor (for plots and t-SNE; the model takes ``x`` as it is)."""
        return self.x.to_dense() if self.x.layout != torch.strided else self.x

    def __repr__(self) -> str:
        layout = "sparse" if self.x.layout != torch.strided else "dense"
        return (
            f"Graph(name={self.name!r}, num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
            f"num_features={self.num_features} ({layout}), num_classes={self.num_classes}, "
            f"train/val/test={int(self.train_mask.sum())}/{int(self.val_mask.sum())}/{int(self.test_mask.sum())})"
        )
