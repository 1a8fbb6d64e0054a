"""ICL (Dai et al. 2023) as the CoLLM family's tables use it: the frozen backbone, nothing
trained, scored on the " Yes" logit of the text-only (TALLRec) prompt.

No ICL config was published with the CoLLM / CoRA / GraphLoRA code; its natural zero-shot path
("no LoRA, text prompt, evaluate only") is the default variant. The ``demos`` variant is Dai et
al.'s protocol in this prompt format: ``n_demos`` solved demonstrations (default 1) from the same
user's train rows, each the text prompt of that row followed by its answer (" Yes" / " No"),
placed before the query prompt. The demonstrations are the user's most recent train rows
strictly before the query row (no leakage; a user with none gets the plain prompt). Within
``max_len`` the query's history is truncated first (oldest titles, as in every prompt); a
demonstration (the oldest first) is dropped only when the query does not fit even without history.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from bench.config import require
from bench.data.schema import Split
from bench.llm.prompts import Encoded, PromptBuilder, render
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage
from bench.method import Method


@dataclasses.dataclass(frozen=True)
class ICLConfig(LLMConfig):
    n_demos: int = 0  # solved demonstrations before the query (0: zero-shot)

    def validate(self) -> None:
        super().validate()
        require(self.n_demos >= 0, "ICLConfig", "n_demos must be >= 0", "e.g. 0 (zero-shot) or 1 (Dai et al.)")


class ICL(LLMRecommender):
    Config = ICLConfig
    variants = {"default": {}, "demos": {"n_demos": 1}}
    default_variant = "default"
    description = "ICL: frozen backbone, text prompt, no training (zero-shot; `demos`: k solved examples)"
    shares_prefix = True  # no adapters; prefix groups are found on the token ids themselves

    def build(self, split: Split) -> None:
        self._train = split.train  # demonstrations are drawn from it (never trained on)
        self._by_user: dict[Any, pd.DataFrame] | None = None

    def stages(self) -> list[Stage]:
        return []  # nothing is trained: fit only loads the backbone

    # no train step to time: the base Method's (None), which also keeps ICL out of Table 6's
    # efficiency benchmark (it measures methods with a timed step)
    step_timings = Method.step_timings

    # ---- demonstrations -----------------------------------------------------------------
    def _demo_rows(self, user: Any, ts: Any) -> list[Any]:
        """The user's ``n_demos`` most recent train rows strictly before ``ts``, oldest first."""
        mine = (self._by_user or {}).get(user)
        if mine is None:
            return []
        if ts is not None and "timestamp" in mine:
            mine = mine[mine["timestamp"].to_numpy() < ts]
        return list(mine.tail(self.config.n_demos).itertuples(index=False))

    def _encoded(self, rows: pd.DataFrame, prompt: str) -> list[Encoded]:
        if self.config.n_demos == 0:
            return super()._encoded(rows, prompt)
        key = (id(rows), prompt)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is rows:
            return hit[1]
        if self._by_user is None:
            train = self._train.sort_values("timestamp", kind="stable") if "timestamp" in self._train else self._train
            self._by_user = {u: g for u, g in train.groupby("user", sort=False)}
        c, tok = self.config, self.bb.tokenizer
        pb = PromptBuilder(tok, prompt, self.domain, c.history_len, c.max_len)
        words = {1: " Yes", 0: " No"}

        def demo_text(d: Any) -> str:
            hist = list(d.history_titles)[-c.history_len:] if c.history_len > 0 else []
            disliked = getattr(d, "disliked_titles", None)
            if disliked is not None:
                disliked = list(disliked)[-c.history_len:] if c.history_len > 0 else []
            return render(pb.template, self.domain, hist, d.title, disliked) + words[int(d.label)] + "\n"

        out = []
        ts = rows["timestamp"].to_numpy() if "timestamp" in rows else [None] * len(rows)
        disliked = rows["disliked_titles"] if "disliked_titles" in rows else [None] * len(rows)
        for r, t, h, title, dis in zip(rows.itertuples(index=False), ts, rows["history_titles"], rows["title"], disliked):
            demos = [tok.encode(demo_text(d), add_special_tokens=False) for d in self._demo_rows(r.user, t)]
            while True:
                head = [i for d in demos for i in d]
                pb.max_len = c.max_len - len(head)
                try:
                    if pb.max_len <= 0:
                        raise ValueError("demonstrations alone exceed max_len")
                    q = pb.encode(h, title, None, dis)
                    break
                except ValueError:
                    if not demos:
                        raise
                    demos = demos[1:]  # the oldest demonstration goes first
            n_pre = len(pb.prefix)  # BOS (if any) stays first, the demonstrations follow it
            ids = q.input_ids[:n_pre] + head + q.input_ids[n_pre:]
            out.append(Encoded(ids, [(p + len(head) if p >= n_pre else p, k) for p, k in q.slots], q.n_history))
        self._cache[key] = (rows, out)
        return out
