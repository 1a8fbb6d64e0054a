"""Collation of encoded prompts: left padding (so the last position is every row's answer cue),
explicit position ids, slot positions shifted by the padding, length-bucketed batches."""
from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np
import torch

from bench.llm.prompts import Encoded


@dataclasses.dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) left-padded
    attention_mask: torch.Tensor  # (B, T)
    position_ids: torch.Tensor  # (B, T): 0.. from each row's first real token
    slot_rows: torch.Tensor  # (S,) batch row of each slot
    slot_cols: torch.Tensor  # (S,) token position of each slot
    slot_is_user: torch.Tensor  # (S,) bool: a <UserID> slot (else <TargetItemID>)
    slot_nodes: torch.Tensor  # (S,) the user id or item id behind each slot
    rows: np.ndarray  # (B,) indices into the scored table
    labels: torch.Tensor  # (B,) float
    users: torch.Tensor  # (B,) each row's user key (user id, or a per-row index for sequence CF)
    items: torch.Tensor  # (B,) each row's item id

    def to(self, device: torch.device) -> "Batch":
        for f in ("input_ids", "attention_mask", "position_ids", "slot_rows", "slot_cols", "slot_is_user",
                  "slot_nodes", "labels", "users", "items"):
            setattr(self, f, getattr(self, f).to(device, non_blocking=True))
        return self


def collate(encoded: Sequence[Encoded], rows: np.ndarray, users: np.ndarray, items: np.ndarray,
            labels: np.ndarray, pad_id: int) -> Batch:
    T = max(len(e.input_ids) for e in encoded)
    B = len(encoded)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    srow, scol, skind, snode = [], [], [], []
    for b, e in enumerate(encoded):
        off = T - len(e.input_ids)
        ids[b, off:] = torch.as_tensor(e.input_ids)
        mask[b, off:] = 1
        for pos, kind in e.slots:
            srow.append(b)
            scol.append(off + pos)
            skind.append(kind)
            snode.append(int(users[b] if kind == "user" else items[b]))
    pos_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, pos_ids, torch.as_tensor(srow, dtype=torch.long), torch.as_tensor(scol, dtype=torch.long),
                 torch.as_tensor([k == "user" for k in skind], dtype=torch.bool), torch.as_tensor(snode, dtype=torch.long), np.asarray(rows),
                 torch.as_tensor(np.asarray(labels), dtype=torch.float32),
                 torch.as_tensor(np.asarray(users), dtype=torch.long), torch.as_tensor(np.asarray(items), dtype=torch.long))


def bucketed(lengths: Sequence[int], batch_size: int, shuffle: bool, rng: np.random.Generator | None = None
             ) -> Iterator[np.ndarray]:
    """Index batches of similar length (little padding); shuffled batch order when training."""
    lengths = np.asarray(lengths)
    if shuffle:
        # sort within random chunks of 50 batches: similar lengths, but a fresh mix each epoch
        order = rng.permutation(len(lengths))
        chunk = batch_size * 50
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in np.array_split(order, max(1, len(order) // chunk))]) if len(order) else order
    else:
        order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    yield from batches
