"""Dataset transforms: registered ``Split -> Split`` steps, applied in one place, recorded verbatim.

A step is a plain dict, ``{"name": "subset_users", "n": 60, "seed": 0}``: the suite's dataset
spec yields its steps in order, ``apply`` runs them on the loaded split, the run record stores
them as they are, and the report describes the data from the record's steps alone. A new
transform is one registered function here; nothing else threads its parameters by hand.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from bench.data.schema import Split
from bench.errors import BenchError, unknown

Step = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Transform:
    fn: Callable[..., Split]  # fn(split, **params) -> Split
    params: tuple[str, ...]  # every parameter a step must give (no hidden defaults in records)
    describe: Callable[..., str]  # describe(**params) -> words for the report


TRANSFORMS: dict[str, Transform] = {}


def register(name: str, params: tuple[str, ...], describe: Callable[..., str]) -> Callable:
    def wrap(fn: Callable[..., Split]) -> Callable[..., Split]:
        TRANSFORMS[name] = Transform(fn, params, describe)
        return fn

    return wrap


def _check(step: Step) -> Transform:
    if not isinstance(step, dict) or "name" not in step:
        raise BenchError(f"dataset transform {step!r} is not a mapping with a name",
                         f"write steps as {{name: ..., ...}}; known: {', '.join(TRANSFORMS)}")
    if step["name"] not in TRANSFORMS:
        raise unknown("dataset transform", str(step["name"]), TRANSFORMS)
    t = TRANSFORMS[step["name"]]
    given = set(step) - {"name"}
    if given != set(t.params):
        raise BenchError(f"dataset transform {step['name']} takes {', '.join(t.params)}, got {', '.join(sorted(given)) or 'nothing'}",
                         f"give exactly: {', '.join(t.params)}")
    return t


def apply(split: Split, steps: Iterable[Step]) -> Split:
    """Each step in order (the split's loader notes carry through every step)."""
    for step in steps:
        t = _check(step)
        split = t.fn(split, **{k: step[k] for k in t.params})
    return split


def describe(steps: Iterable[Step]) -> str:
    """The steps in words, in order ("all users" when none subsets the users)."""
    steps = list(steps)
    words = [TRANSFORMS[s["name"]].describe(**{k: s[k] for k in TRANSFORMS[s["name"]].params})
             if s.get("name") in TRANSFORMS else f"unknown transform {s!r}" for s in steps]
    if not any(s.get("name") == "subset_users" for s in steps):
        words.insert(0, "all users")
    return ", ".join(words)


def _register_builtins() -> None:
    from bench.data import cap_eval_rows, eval_by_users, few_shot, subset, top_items

    register("subset_users", ("n", "seed"), lambda n, seed: f"{n}-user subset (seed {seed})")(
        lambda split, n, seed: subset(split, n, seed))
    register("top_items", ("n",), lambda n: f"only rows of the {n} most-rated train items")(
        lambda split, n: top_items(split, n))
    register("few_shot", ("n", "seed"), lambda n, seed: f"few-shot: a seeded sample of {n} train rows")(
        lambda split, n, seed: few_shot(split, n, seed))
    register("max_eval_rows", ("n", "seed"), lambda n, seed: f"seeded samples of at most {n} valid / test rows")(
        lambda split, n, seed: cap_eval_rows(split, n, seed))
    register("eval_by_users", ("valid", "test", "seed"),
             lambda valid, test, seed: f"seeded samples of whole users holding at least {valid} valid / {test} test rows")(
        lambda split, valid, test, seed: eval_by_users(split, valid, test, seed))


_register_builtins()
