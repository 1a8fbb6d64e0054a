"""Graph encoders over the batch's subgraph, with torch-geometric message passing.

Nodes are users ``0..n_users-1`` then items ``n_users + item``; edges are the train positives
(both directions). Each encoder maps node MF embeddings to a ``out_dim`` vector per node."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GCNConv, LGConv, MessagePassing


class NGCFConv(MessagePassing):
    """NGCF propagation: e_i' = LeakyReLU(W1 e_i + sum_j n_ij (W1 e_j + W2 (e_j * e_i))), with
    n_ij = 1 / sqrt(deg_i deg_j) from the whole train graph (passed as edge weights)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__(aggr="add")
        self.w1, self.w2 = nn.Linear(in_dim, out_dim), nn.Linear(in_dim, out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        out = self.propagate(edge_index, x=x, norm=edge_weight) + self.w1(x)
        return self.dropout(nn.functional.leaky_relu(out, 0.2))

    def message(self, x_i: torch.Tensor, x_j: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        return norm[:, None] * (self.w1(x_j) + self.w2(x_j * x_i))


class GraphEncoder(nn.Module):
    """``kind`` in ngcf / gcn (in -> hidden ... -> out), lightgcn (weightless mean of layers),
    identity (the node's own embedding: the LoRA-only-with-trainable-MF ablation)."""

    def __init__(self, kind: str, in_dim: int, hidden: int, out_dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        if kind == "ngcf":
            self.convs = nn.ModuleList(NGCFConv(a, b, dropout) for a, b in zip(dims, dims[1:]))
        elif kind == "gcn":
            self.convs = nn.ModuleList(GCNConv(a, b, normalize=False) for a, b in zip(dims, dims[1:]))
            self.dropout = nn.Dropout(dropout)
        elif kind == "lightgcn":
            self.convs = nn.ModuleList(LGConv(normalize=False) for _ in range(layers))
        elif kind != "identity":
            raise ValueError(f"unknown encoder {kind!r}")
        self.out_dim = in_dim if kind in ("lightgcn", "identity") else out_dim

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return x
        if self.kind == "lightgcn":
            outs = [x]
            for conv in self.convs:
                outs.append(conv(outs[-1], edge_index, edge_weight))
            return torch.stack(outs).mean(0)
        for n, conv in enumerate(self.convs):
            x = conv(x, edge_index, edge_weight)
            if self.kind == "gcn" and n < len(self.convs) - 1:
                x = self.dropout(torch.relu(x))
        return x


class Subgraphs:
    """The train-positive graph, and for each slot node its own 1-hop ego graph.

    Each slot gets a separate copy of its node and neighbours (a disjoint union of stars), so a
    row's graph signal never depends on which other rows share its batch or their order. Edge
    weights are the symmetric normalisation 1/sqrt(deg_u deg_i) of the whole train graph. With
    ``max_neighbors``, each node keeps a fixed seeded sample of its neighbours.
    """

    def __init__(self, edges: np.ndarray, n_users: int, n_items: int, max_neighbors: int = 0, seed: int = 0) -> None:
        self.n_users, self.num_nodes = n_users, n_users + n_items
        u = torch.as_tensor(edges[:, 0], dtype=torch.long)
        i = torch.as_tensor(edges[:, 1], dtype=torch.long) + n_users
        src, dst = torch.cat([u, i]), torch.cat([i, u])
        order = torch.argsort(src, stable=True)
        self._dst = dst[order]
        self._ptr = torch.searchsorted(src[order], torch.arange(self.num_nodes + 1))
        self.deg = (self._ptr[1:] - self._ptr[:-1]).clamp(min=1).float()
        self.max_neighbors = max_neighbors
        self._keep: dict[int, torch.Tensor] = {}
        self._gen = torch.Generator().manual_seed(seed)

    def node_ids(self, is_user: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return torch.where(is_user, ids, ids + self.n_users)

    def neighbors(self, node: int) -> torch.Tensor:
        nb = self._dst[self._ptr[node]:self._ptr[node + 1]]
        if self.max_neighbors and len(nb) > self.max_neighbors:
            if node not in self._keep:
                self._keep[node] = nb[torch.randperm(len(nb), generator=self._gen)[: self.max_neighbors]]
            nb = self._keep[node]
        return nb

    def ego_graphs(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(global id of each local node, local edge_index, edge weights, local index of each
        slot's own node), for the disjoint union of the slots' 1-hop ego graphs."""
        ids, src, dst, centers = [], [], [], []
        offset = 0
        for node in nodes.tolist():
            nb = self.neighbors(node)
            centers.append(offset)
            ids += [torch.tensor([node]), nb]
            local = torch.arange(offset + 1, offset + 1 + len(nb))
            src += [torch.full_like(local, offset), local]
            dst += [local, torch.full_like(local, offset)]
            offset += 1 + len(nb)
        ids = torch.cat(ids)
        ei = torch.stack([torch.cat(src), torch.cat(dst)])
        weight = (self.deg[ids[ei[0]]] * self.deg[ids[ei[1]]]).rsqrt()
        return ids, ei, weight, torch.tensor(centers)
