"""Yes-logit scoring of a table's rows, shared by every LLM recommender: prompts tokenised once
per table, length-bucketed left-padded batches, and (where the model allows it) a user's shared
prompt prefix run once as a KV cache (``bench.llm.prefix``).

A ``Scorer`` belongs to one recommender (its ``model``) and asks it only what differs between
methods, through public members (``ScoredModel``): its prompts (``encode``), what fills a user
slot (``user_keys``), the decoder forward and the Yes logit read from it. Everything else, how
rows are batched, sharded across ranks, cached and run, is the same for every method."""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import pandas as pd
import torch

from bench import distributed
from bench.llm.backbone import Backbone, autocast, kv_cache_keyword
from bench.llm.batching import Batch, bucketed, collate
from bench.llm.prefix import batch_groups, plan, split_encoded
from bench.llm.prompts import Encoded, PromptBuilder


class ScoredModel(Protocol):
    """What a ``Scorer`` reads of the recommender it scores for (``LLMRecommender`` is one)."""

    bb: Backbone
    config: Any  # eval_batch_size, history_len, max_len
    domain: str
    model: Any  # the causal LM (eval mode while scoring)
    modules: torch.nn.Module  # method-owned parts (eval mode while scoring)
    prefix_sharing: bool  # False: every prompt scored whole

    def encode(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]: ...

    def slot_text(self, row: Any) -> Mapping[str, str] | None: ...

    def user_keys(self, rows: pd.DataFrame) -> np.ndarray: ...

    def decoder_outputs(self, batch: Batch, attention_mask: torch.Tensor | None = None, **model_kwargs: Any) -> Any: ...

    def forward_scores(self, batch: Batch, **model_kwargs: Any) -> torch.Tensor: ...


class Scorer:
    """Scores rows of a table with ``model``'s prompts: ``score(rows, prompt)`` gives one Yes
    logit per row, in the table's order; ``encode`` and ``batches`` are the steps it takes."""

    def __init__(self, model: ScoredModel) -> None:
        self.model = model
        # tokenised prompts by (id of the table, prompt); each entry holds its table, so the id
        # cannot be reused by another frame while cached. A model's own encodings may share it.
        self.cache: dict[tuple[int, str], tuple[pd.DataFrame, list[Encoded]]] = {}

    def encode(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]:
        """The model's tokenised prompts of ``rows`` (its own encoding where it has one, e.g. ICL's
        demonstrations, else ``tokenize``): the token ids ``score`` runs."""
        return self.model.encode(rows, prompt)

    def tokenize(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]:
        """The prompt template's tokenised prompts of ``rows`` (``PromptBuilder``, ID slots filled
        with the model's ``slot_text`` where it writes text), cached per table object."""
        key = (id(rows), prompt)
        hit = self.cache.get(key)
        if hit is None or hit[0] is not rows:
            m = self.model
            pb = PromptBuilder(m.bb.tokenizer, prompt, m.domain, m.config.history_len, m.config.max_len)
            disliked = rows["disliked_titles"] if "disliked_titles" in rows else [None] * len(rows)
            hit = (rows, [pb.encode(h, t, m.slot_text(r), d) for r, h, t, d in
                          zip(rows.itertuples(index=False), rows["history_titles"], rows["title"], disliked)])
            self.cache[key] = hit
        return hit[1]

    def batches(self, rows: pd.DataFrame, prompt: str, batch_size: int, shuffle: bool, seed: int = 0,
                subset: np.ndarray | None = None) -> Iterator[Batch]:
        """Length-bucketed batches over ``rows`` (or its ``subset`` of row indices), on the
        backbone's device. Under data parallelism a training (shuffled) batch is the global batch:
        each rank keeps its strided share, and a final batch too small to give every rank a row is
        dropped by all ranks alike."""
        enc = self.encode(rows, prompt)
        users, items, labels = self.model.user_keys(rows), rows["item"].to_numpy(), rows["label"].to_numpy()
        bb = self.model.bb
        pad = bb.tokenizer.pad_token_id
        rng = np.random.default_rng(seed)
        pick = np.arange(len(enc)) if subset is None else np.asarray(subset)
        world = distributed.world_size()
        for pos in bucketed([len(enc[i].input_ids) for i in pick], batch_size, shuffle, rng):
            idx = pick[pos]
            if shuffle and world > 1:
                if len(idx) < world:
                    continue
                idx = distributed.shard(idx)
            yield collate([enc[i] for i in idx], idx, users[idx], items[idx], labels[idx], pad).to(bb.device)

    def score(self, rows: pd.DataFrame, prompt: str) -> np.ndarray:
        """The Yes logit of every row of ``rows``, in the table's order: eval mode, ``inference_mode``,
        ``config.eval_batch_size`` rows a batch, rows sharing a prompt prefix together where the
        model's ``prefix_sharing`` allows. Each rank scores its strided share; the gather puts
        every row back exactly once."""
        m = self.model
        mine = distributed.shard(np.arange(len(rows)))
        done: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        m.model.eval()
        m.modules.eval()
        with torch.inference_mode(), autocast(m.bb.device, m.bb.dtype):
            whole = mine
            if m.prefix_sharing:
                whole = self._score_shared(rows, prompt, mine, done, scores)
            for batch in self.batches(rows, prompt, m.config.eval_batch_size, shuffle=False, subset=whole):
                done.append(batch.rows)
                scores.append(m.forward_scores(batch).float().cpu().numpy())
        return distributed.gather_rows(len(rows), np.concatenate(done) if done else np.empty(0, dtype=np.int64),
                                       np.concatenate(scores) if scores else np.empty(0))

    def _score_shared(self, rows: pd.DataFrame, prompt: str, subset: np.ndarray, done: list, scores: list) -> np.ndarray:
        """Score the rows of ``subset`` that share a prompt prefix with another row: each group's
        prefix runs once (left-padded, cached), then its rows run their own tokens against that
        cache. Returns the rows left to score whole."""
        m = self.model
        enc = self.encode(rows, prompt)
        users, items, labels = m.user_keys(rows), rows["item"].to_numpy(), rows["label"].to_numpy()
        groups, singles = plan(enc, users, subset)
        pad, dev, kv = m.bb.tokenizer.pad_token_id, m.bb.device, kv_cache_keyword(m.model.get_decoder())
        for chunk in batch_groups(groups, enc, m.config.eval_batch_size):
            lead = np.asarray([g.rows[0] for g in chunk])
            heads = [split_encoded(enc[g.rows[0]], g.shared)[0] for g in chunk]
            head = collate(heads, lead, users[lead], items[lead], labels[lead], pad).to(dev)
            cache = m.decoder_outputs(head, use_cache=True)[kv]
            member = np.concatenate([g.rows for g in chunk])
            owner = torch.as_tensor(np.repeat(np.arange(len(chunk)), [len(g.rows) for g in chunk]), device=dev)
            cache.reorder_cache(owner)  # one copy of its group's prefix per row
            starts = np.repeat([g.shared for g in chunk], [len(g.rows) for g in chunk])
            tail = collate([split_encoded(enc[i], at)[1] for i, at in zip(member, starts)], member, users[member],
                           items[member], labels[member], pad).to(dev)
            tail.position_ids = (tail.position_ids + torch.as_tensor(starts, device=dev)[:, None]) * tail.attention_mask
            mask = torch.cat([head.attention_mask[owner], tail.attention_mask], dim=1)
            done.append(member)
            scores.append(m.forward_scores(tail, attention_mask=mask, **{kv: cache}).float().cpu().numpy())
        return singles
