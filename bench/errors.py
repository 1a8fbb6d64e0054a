"""One error type for every bad input: it names the problem and the fix."""
from __future__ import annotations

import difflib
from typing import Iterable


class BenchError(Exception):
    """A user-facing error: ``problem`` says what is wrong, ``fix`` what to do about it."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}" + (f"\n  fix: {fix}" if fix else ""))


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}known: {', '.join(choices)}"


def unknown(kind: str, name: str, choices: Iterable[str]) -> BenchError:
    choices = list(choices)
    return BenchError(f"unknown {kind} {name!r}", did_you_mean(name, choices))
