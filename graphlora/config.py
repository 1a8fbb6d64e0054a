"""GraphLoRA's configuration: every field has a default (the published code's) and a meaning."""
from __future__ import annotations

import dataclasses

from bench.config import require
from bench.llm.recommender import LLMConfig

ENCODERS = ("ngcf", "lightgcn", "gcn", "identity", "none")
INJECTIONS = ("middle", "pre")
GNN_SPACES = ("rank", "hidden")
SUBGRAPHS = ("induced", "star")
NGCF_MESSAGES = ("paper", "published")
OPTIMIZERS = ("one-adamw", "adamw+adam")

# ``inject_layer: auto``: where the paper injects, as a fraction of the way up the decoder stack
# (0 = first layer, 1 = last), so a backbone of another depth gets the same relative depth. The
# paper (Sec. 5.1, Fig. 4) picks layer 31 of Vicuna-7B's 32 for ML-1M and 15 for Amazon-Book on
# valid; a source dataset not listed (ML-100K, Book-Crossing, ...) gets ML-1M's choice, the top.
INJECT_FRACTION: dict[str, float] = {"amazon-book": 15 / 31}
DEFAULT_INJECT_FRACTION = 1.0


def resolve_inject_layer(spec: str, dataset: str, num_layers: int) -> int:
    """The decoder layer index ``inject_layer`` names on a backbone of ``num_layers`` layers."""
    if spec == "auto":
        return round(INJECT_FRACTION.get(dataset, DEFAULT_INJECT_FRACTION) * (num_layers - 1))
    layer = int(spec)
    if not -num_layers <= layer < num_layers:
        raise ValueError(f"inject_layer {layer} is outside a backbone of {num_layers} layers")
    return layer % num_layers


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class GraphLoRAConfig(LLMConfig):
    # --- graph encoder over each row's subgraph of the train-positive graph
    encoder: str = "ngcf"  # ngcf | lightgcn | gcn | identity (LoRA-only, trainable MF) | none (no injection)
    # induced: one subgraph per row, induced by {u, i} + N(u) + N(i) (the published model, trained
    # at batch 1): 3 NGCF layers see u-j-v-i paths joining the user and the target item.
    # star: each slot node's own 1-hop star, apart from everything else (no path ever joins u and i)
    subgraph: str = "induced"
    # training only: cut the row's own (u, i) edge (and its count in both degrees) from its graph.
    # Every positive train pair is an edge and no negative one is, so an encoder can otherwise
    # learn "is (u, i) an edge", which never holds at test time; the published code keeps the edge
    drop_target_edge: bool = False
    gnn_layers: int = 3
    gnn_hidden: int = 256  # NGCF / GCN hidden width: 256 -> 256 -> r
    # rank: the GNN ends at LoRA's rank r (for middle injection); hidden: every GNN layer is the
    # LLM's hidden size (256 -> H -> H -> H) and is added before A as it is: the paper's Pre-A
    # count (5.224x LoRA-only at the 7B shape) is exactly this
    gnn_space: str = "rank"
    gnn_dropout: float = 0.0  # off: the published code calls eval() on its encoder in every forward
    # paper: NGCF's e_j * e_i interaction term; published: the published layer's A_hat (e * e)
    ngcf_message: str = "paper"
    max_neighbors: int = 0  # cap on the neighbours a node brings into a subgraph (0 = all)
    # --- the injected signal g = g_scale * normalize(GNN(node)), inside the q / v LoRA of ONE layer
    g_scale: float = 0.1  # published: L2-normalised, then x 0.1 (before beta_f's own 0.1)
    # P: a Linear per target module between g and where it is injected. Published: none (the last
    # GNN layer already maps to r; LightGCN and the identity encoder end with one Linear to r).
    # A hidden-size signal injected before A is already in x's space and never gets one.
    projection: bool = False
    injection: str = "middle"  # middle: B(alpha A x + beta g); pre: A(x + beta g)
    # auto: the paper's layer for the dataset, as a fraction of the depth (INJECT_FRACTION); or a
    # layer index, negative counting from the top (-1 = last); ``layer-<k>`` variants sweep it
    inject_layer: str = "auto"
    alpha_f: float = 1.0
    beta_f: float = 0.1
    # --- collaborative embeddings: MF (d = the cached MF run's width), shared by projector and GNN
    cf_method: str = "mf"  # registered CF baseline with a user table whose embeddings seed the MF
    cf_variant: str = "bce"
    mf_trainable: bool = True
    projector_mult: int = 10  # input projector Linear(d, 10d) - ReLU - Linear(10d, hidden), as CoLLM
    # --- optimiser. one-adamw: the published config, one AdamW at ``lr`` (weight decay
    # ``weight_decay``) over every trainable part. adamw+adam: the paper's text, AdamW at ``lr`` for
    # LoRA + projector, Adam (no weight decay) at ``gnn_lr`` for MF, GNN and P
    optimizer: str = "one-adamw"
    lr: float = 1e-4  # published init_lr (cosine to min_lr 8e-5 after 200 warm-up steps)
    gnn_lr: float = 1e-3  # adamw+adam only

    def validate(self) -> None:
        super().validate()
        owner = "GraphLoRAConfig"
        for name, allowed in (("encoder", ENCODERS), ("injection", INJECTIONS), ("gnn_space", GNN_SPACES),
                              ("subgraph", SUBGRAPHS), ("ngcf_message", NGCF_MESSAGES), ("optimizer", OPTIMIZERS)):
            value = getattr(self, name)
            require(value in allowed, owner, f"{name} {value!r} is unknown", f"use one of {allowed}")
        require(self.gnn_layers > 0 and self.gnn_hidden > 0, owner, "gnn_layers and gnn_hidden must be > 0", "e.g. 3 and 256")
        require(0 <= self.gnn_dropout < 1, owner, "gnn_dropout must be in [0, 1)", "e.g. 0 (published) or 0.1")
        require(self.max_neighbors >= 0, owner, "max_neighbors must be >= 0", "0 means all neighbours")
        require(self.g_scale > 0, owner, "g_scale must be > 0", "e.g. 0.1 (published) or 1")
        require(self.gnn_lr > 0, owner, "gnn_lr must be > 0", "e.g. 1e-3")
        require(self.projector_mult > 0, owner, "projector_mult must be > 0", "e.g. 10")
        require(self.inject_layer == "auto" or _is_int(self.inject_layer), owner,
                f"inject_layer {self.inject_layer!r} is neither auto nor a layer index",
                "use auto (the paper's layer for the dataset) or an int, e.g. -1 for the last layer")
        if self.encoder != "none" and not self.projection:
            # without P the encoder's last layer must already have the size it is added at
            require(not (self.injection == "pre" and self.gnn_space == "rank"), owner,
                    "a rank-r graph signal cannot be added before A (x has the hidden size) without P",
                    "set projection: true (variant pre), or gnn_space: hidden (variant pre-hidden)")
            require(not (self.injection == "middle" and self.gnn_space == "hidden"), owner,
                    "a hidden-size graph signal cannot be added after A (rank r) without P",
                    "set projection: true, or gnn_space: rank")
