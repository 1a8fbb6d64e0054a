"""Graph encoders and the per-row subgraphs they run on, with torch-geometric message passing.

Nodes are users ``0..n_users-1`` then items ``n_users + item``; edges are the train positives
(both directions), weighted by the symmetric normalisation 1/sqrt(deg_a deg_b) of the whole
train graph. Each encoder maps node MF embeddings to an ``out_dim`` vector per node."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GCNConv, LGConv, MessagePassing


class NGCFConv(MessagePassing):
    """One NGCF layer: e_i' = LeakyReLU(W1 e_i + sum_j n_ij (W1 e_j + W2 m_ij)) with

    - ``paper`` (NGCF, Wang et al. 2019): m_ij = e_j * e_i;
    - ``published`` (the published GraphLoRA layer): m_ij = e_j * e_j, i.e. W2 (A_hat (e * e)).

    The linear maps are taken out of the neighbour sum (NGCF's matrix form): edges carry only
    n_ij e_j (and n_ij), and the matrix products run once per node instead of once per edge,
    which matters on induced subgraphs that hold several times more edges than nodes."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, message: str = "paper") -> None:
        super().__init__(aggr="add")
        self.w1, self.w2 = nn.Linear(in_dim, out_dim), nn.Linear(in_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.message_form = message

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        d = x.size(1)
        if self.message_form == "paper":
            # sum_j n_ij (W1 e_j + b1 + W2 (e_j * e_i) + b2): e_i is a factor of every term, so the
            # sum over j only needs s_i = sum_j n_ij e_j and the weight mass sum_j n_ij
            agg = self.propagate(edge_index, x=torch.cat([x, x.new_ones(len(x), 1)], -1), norm=edge_weight)
            s, mass = agg[:, :d], agg[:, d:]
            nb = (nn.functional.linear(s, self.w1.weight) + nn.functional.linear(s * x, self.w2.weight)
                  + mass * (self.w1.bias + self.w2.bias))
        else:
            agg = self.propagate(edge_index, x=torch.cat([x, x * x], -1), norm=edge_weight)
            nb = self.w1(agg[:, :d]) + self.w2(agg[:, d:])
        return self.dropout(nn.functional.leaky_relu(self.w1(x) + nb, 0.2))

    def message(self, x_j: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        return norm[:, None] * x_j


class GraphEncoder(nn.Module):
    """``kind`` in ngcf / gcn (in -> hidden ... -> out), lightgcn (weightless mean of layers),
    identity (the node's own embedding: the LoRA-only-with-trainable-MF ablation).

    LightGCN and identity keep the input width; with ``readout`` they end with one Linear to
    ``out_dim`` (as the published LightGCN does), else their output stays ``in_dim`` wide and a
    P after them maps it."""

    def __init__(self, kind: str, in_dim: int, hidden: int, out_dim: int, layers: int, dropout: float,
                 ngcf_message: str = "paper", readout: bool = False) -> None:
        super().__init__()
        self.kind = kind
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        if kind == "ngcf":
            self.convs = nn.ModuleList(NGCFConv(a, b, dropout, ngcf_message) for a, b in zip(dims, dims[1:]))
        elif kind == "gcn":
            self.convs = nn.ModuleList(GCNConv(a, b, normalize=False) for a, b in zip(dims, dims[1:]))
            self.dropout = nn.Dropout(dropout)
        elif kind == "lightgcn":
            self.convs = nn.ModuleList(LGConv(normalize=False) for _ in range(layers))
        elif kind != "identity":
            raise ValueError(f"unknown encoder {kind!r}")
        keeps_width = kind in ("lightgcn", "identity")
        self.readout = nn.Linear(in_dim, out_dim) if keeps_width and readout else None
        self.out_dim = in_dim if keeps_width and not readout else out_dim

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        if self.kind == "lightgcn":
            outs = [x]
            for conv in self.convs:
                outs.append(conv(outs[-1], edge_index, edge_weight))
            x = torch.stack(outs).mean(0)
        elif self.kind != "identity":
            for n, conv in enumerate(self.convs):
                x = conv(x, edge_index, edge_weight)
                if self.kind == "gcn" and n < len(self.convs) - 1:
                    x = self.dropout(torch.relu(x))
        return x if self.readout is None else self.readout(x)


@dataclasses.dataclass
class GraphBatch:
    """A disjoint union of small graphs, ready for an encoder."""

    ids: torch.Tensor  # (N,) global node id of each local node
    edge_index: torch.Tensor  # (2, E) local
    edge_weight: torch.Tensor  # (E,)
    anchors: torch.Tensor  # local index of each node asked for: (S,) for stars, (R, 2) = (u, i) for rows


class TrainGraph:
    """The train-positive graph in CSR form, and the subgraphs a batch's rows run their encoder on.

    Every row (or slot) gets its own copy of its subgraph, so a row's graph signal never depends
    on which other rows share its batch or their order. With ``max_neighbors``, each node brings a
    fixed seeded sample of its neighbours into a subgraph. The bookkeeping is numpy: its index
    operations are tiny, and torch's thread pool made each cost milliseconds on a busy CPU."""

    def __init__(self, edges: np.ndarray, n_users: int, n_items: int, max_neighbors: int = 0, seed: int = 0) -> None:
        self.n_users, self.num_nodes = n_users, n_users + n_items
        u = np.asarray(edges[:, 0], dtype=np.int64)
        i = np.asarray(edges[:, 1], dtype=np.int64) + n_users
        src, dst = np.concatenate([u, i]), np.concatenate([i, u])
        order = np.argsort(src, kind="stable")
        self._dst = dst[order]
        self._ptr = np.searchsorted(src[order], np.arange(self.num_nodes + 1))
        self.deg = np.diff(self._ptr).astype(np.float64)
        self.max_neighbors = max_neighbors
        self._keep: dict[int, np.ndarray] = {}
        self._gen = torch.Generator().manual_seed(seed)

    def all_neighbors(self, node: int) -> np.ndarray:
        return self._dst[self._ptr[node]:self._ptr[node + 1]]

    def neighbors(self, node: int) -> np.ndarray:
        """The neighbours ``node`` brings into a subgraph (a fixed sample under ``max_neighbors``)."""
        nb = self.all_neighbors(node)
        if self.max_neighbors and len(nb) > self.max_neighbors:
            if node not in self._keep:
                pick = torch.randperm(len(nb), generator=self._gen)[: self.max_neighbors].numpy()
                self._keep[node] = nb[pick]
            nb = self._keep[node]
        return nb

    def has_edge(self, a: int, b: int) -> bool:
        return bool((self.all_neighbors(a) == b).any())

    @staticmethod
    def _batch(ids: list[np.ndarray], eis: list[np.ndarray], degs: list[np.ndarray], anchors: list) -> GraphBatch:
        ei, deg = np.concatenate(eis, 1), np.concatenate(degs)
        weight = 1.0 / np.sqrt(np.maximum(deg[ei[0]] * deg[ei[1]], 1.0))
        return GraphBatch(torch.from_numpy(np.concatenate(ids)), torch.from_numpy(ei),
                          torch.from_numpy(weight).float(), torch.as_tensor(anchors, dtype=torch.long))

    def stars(self, nodes: torch.Tensor, cut: torch.Tensor | None = None) -> GraphBatch:
        """Each node's own 1-hop star (node + its neighbours, edges to the centre only). ``cut``:
        per node, a neighbour whose edge is left out (-1: none), its degree count with it."""
        ids, eis, degs, centers = [], [], [], []
        offset = 0
        for s, node in enumerate(nodes.tolist()):
            nb = self.neighbors(node)
            deg = self.deg[np.concatenate([[node], nb])]
            partner = -1 if cut is None else int(cut[s])
            if partner >= 0 and self.has_edge(node, partner):
                keep = nb != partner
                nb, deg = nb[keep], np.concatenate([deg[:1] - 1, deg[1:][keep]])
            local = np.arange(offset + 1, offset + 1 + len(nb))
            center = np.full_like(local, offset)
            ids.append(np.concatenate([[node], nb]))
            eis.append(np.stack([np.concatenate([center, local]), np.concatenate([local, center])]))
            degs.append(deg)
            centers.append(offset)
            offset += 1 + len(nb)
        return self._batch(ids, eis, degs, centers)

    def _edges_within(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local (src, dst) of every train edge between two of ``nodes`` (sorted, unique)."""
        starts, lens = self._ptr[nodes], self._ptr[nodes + 1] - self._ptr[nodes]
        src = np.repeat(np.arange(len(nodes)), lens)
        dst = self._dst[np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(lens.sum())]
        at = np.minimum(np.searchsorted(nodes, dst), len(nodes) - 1)
        inside = nodes[at] == dst
        return src[inside], at[inside]

    def induced(self, users: torch.Tensor, items: torch.Tensor, drop_target: bool = False) -> GraphBatch:
        """Per row r, the subgraph induced by {u, i} + N(u) + N(i) (global node ids ``users[r]``,
        ``items[r]``): every train edge between two of those nodes, so u-j-v-i paths are in it.
        ``drop_target``: the row's own (u, i) edge is left out, and so is its count in u's and i's
        degrees, as if the graph never had it."""
        ids, eis, degs, anchors = [], [], [], []
        offset = 0
        for u, i in zip(users.tolist(), items.tolist()):
            nodes = np.unique(np.concatenate([[u, i], self.neighbors(u), self.neighbors(i)]))
            src, dst = self._edges_within(nodes)
            lu, li = np.searchsorted(nodes, [u, i]).tolist()
            deg = self.deg[nodes].copy()
            if drop_target:
                target = ((src == lu) & (dst == li)) | ((src == li) & (dst == lu))
                if target.any():
                    src, dst = src[~target], dst[~target]
                    deg[[lu, li]] -= 1
            ids.append(nodes)
            eis.append(np.stack([src, dst]) + offset)
            degs.append(deg)
            anchors.append([offset + lu, offset + li])
            offset += len(nodes)
        return self._batch(ids, eis, degs, anchors)
