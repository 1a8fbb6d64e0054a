"""GraphLoRA's configuration: every field has a default (the paper's) and a meaning."""
from __future__ import annotations

import dataclasses

from bench.config import require
from bench.llm.recommender import LLMConfig

ENCODERS = ("ngcf", "lightgcn", "gcn", "identity", "none")
INJECTIONS = ("middle", "pre")
GNN_SPACES = ("rank", "hidden")


@dataclasses.dataclass(frozen=True)
class GraphLoRAConfig(LLMConfig):
    # graph encoder over the batch nodes + their 1-hop neighbourhood (train positives)
    encoder: str = "ngcf"  # ngcf | lightgcn | gcn | identity (LoRA-only, trainable MF) | none (no injection)
    gnn_layers: int = 3
    gnn_hidden: int = 256  # NGCF / GCN hidden width: 256 -> 256 -> r
    # rank: the GNN ends at LoRA's rank r and P maps it where it is injected; hidden: every GNN
    # layer is the LLM's hidden size (256 -> H -> H -> H) and, injected before A, is added as it
    # is (no P): the paper's Pre-A count (5.224x LoRA-only at the 7B shape) is exactly this
    gnn_space: str = "rank"
    gnn_dropout: float = 0.1  # message dropout (the published code leaves it always off: a defect)
    max_neighbors: int = 0  # cap on sampled neighbours per batch node (0 = all)
    # injection inside the q / v LoRA of ONE layer, at the ID token positions only
    injection: str = "middle"  # middle: B(alpha A x + beta P g); pre: A(x + beta P g), P to hidden size
    inject_layer: int = -1  # transformer layer index; negative counts from the top (-1 = last)
    alpha_f: float = 1.0
    beta_f: float = 0.1
    # collaborative embeddings: MF (d = the cached MF run's width), shared by projector and GNN
    cf_method: str = "mf"  # registered CF baseline with a user table whose embeddings seed the MF
    cf_variant: str = "bce"
    mf_trainable: bool = True
    gnn_lr: float = 1e-3  # Adam (no weight decay) for MF, GNN and P; AdamW at ``lr`` for LoRA + projector
    projector_mult: int = 10  # input projector Linear(d, 10d) - ReLU - Linear(10d, hidden), as CoLLM
    lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        owner = "GraphLoRAConfig"
        require(self.encoder in ENCODERS, owner, f"encoder {self.encoder!r} is unknown", f"use one of {ENCODERS}")
        require(self.injection in INJECTIONS, owner, f"injection {self.injection!r} is unknown", f"use one of {INJECTIONS}")
        require(self.gnn_space in GNN_SPACES, owner, f"gnn_space {self.gnn_space!r} is unknown", f"use one of {GNN_SPACES}")
        require(self.gnn_layers > 0 and self.gnn_hidden > 0, owner, "gnn_layers and gnn_hidden must be > 0", "e.g. 3 and 256")
        require(0 <= self.gnn_dropout < 1, owner, "gnn_dropout must be in [0, 1)", "e.g. 0.1")
        require(self.max_neighbors >= 0, owner, "max_neighbors must be >= 0", "0 means all neighbours")
        require(self.gnn_lr > 0, owner, "gnn_lr must be > 0", "e.g. 1e-3")
        require(self.projector_mult > 0, owner, "projector_mult must be > 0", "e.g. 10")
