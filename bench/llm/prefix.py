"""Shared prompt prefixes for scoring: rows of one user with the same history have the same
prompt up to the target title (template, history, user slot: ~140 of ~170 tokens on ML-1M), so
that part can run once as a KV cache and only the rest runs per row.

``plan`` finds such groups exactly, on token ids: rows are grouped when they have the same user
key (what fills a user slot) and a common token prefix of at least ``min_shared`` tokens, which
stops before any item slot (an item's soft token differs per row) and leaves every row at least
one token of its own."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from bench.llm.prompts import Encoded


@dataclasses.dataclass(frozen=True)
class Group:
    rows: np.ndarray  # indices into the encoded list, two or more
    shared: int  # tokens every row of the group has in common (the cached prefix)


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _limit(e: Encoded) -> int:
    """How much of a row may be cached: before its first item slot, and one token short."""
    cap = len(e.input_ids) - 1
    for pos, kind in e.slots:
        if kind != "user":
            cap = min(cap, pos)
    return cap


def plan(encoded: Sequence[Encoded], user_keys: np.ndarray, subset: np.ndarray,
         min_shared: int = 32) -> tuple[list[Group], np.ndarray]:
    """(groups, singles) over ``subset``: groups of rows that share a cached prefix, and the rows
    that share none and are scored whole."""
    subset = np.asarray(subset)
    # sorted by (user key, tokens), rows with a common prefix are neighbours, and a run's common
    # prefix is the one between its first and last row
    order = sorted(subset.tolist(), key=lambda i: (int(user_keys[i]), encoded[i].input_ids))
    groups: list[Group] = []
    singles: list[int] = []
    k = 0
    while k < len(order):
        first = order[k]
        shared, end = 0, k + 1
        while end < len(order) and int(user_keys[order[end]]) == int(user_keys[first]):
            common = min(_common(encoded[first].input_ids, encoded[order[end]].input_ids),
                         _limit(encoded[first]), _limit(encoded[order[end]]))
            # a run keeps one prefix length: stop where the next row would shorten it
            if common < min_shared or (end > k + 1 and common < shared):
                break
            shared = common if end == k + 1 else shared
            end += 1
        if end - k >= 2:
            groups.append(Group(np.asarray(order[k:end]), shared))
        else:
            singles.append(first)
        k = end
    return groups, np.asarray(singles, dtype=np.int64)


def split_encoded(e: Encoded, at: int) -> tuple[Encoded, Encoded]:
    """(prefix, rest) of one prompt at token ``at``; slot positions follow their tokens."""
    head = Encoded(e.input_ids[:at], [(p, k) for p, k in e.slots if p < at], e.n_history)
    tail = Encoded(e.input_ids[at:], [(p - at, k) for p, k in e.slots if p >= at], e.n_history)
    return head, tail


def batch_groups(groups: list[Group], encoded: Sequence[Encoded], max_rows: int) -> list[list[Group]]:
    """Batches of whole groups, up to ``max_rows`` rows each (a larger group alone), groups with
    similar suffix lengths (what runs after the cached prefix) together."""
    ordered = sorted(groups, key=lambda g: max(len(encoded[i].input_ids) - g.shared for i in g.rows))
    todo: list[list[Group]] = [[]]
    n_rows = 0  # rows in todo[-1]
    for g in ordered:
        if todo[-1] and n_rows + len(g.rows) > max_rows:
            todo.append([])
            n_rows = 0
        todo[-1].append(g)
        n_rows += len(g.rows)
    return [chunk for chunk in todo if chunk]
