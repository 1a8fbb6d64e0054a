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
    """``did you mean 'x'? known: ...`` — matched ignoring case, so ``MF`` suggests ``mf``."""
    choices = sorted(str(c) for c in choices)
    by_lower: dict[str, list[str]] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), []).append(c)
    close = [c for low in difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.5)
             for c in by_lower[low]][:3]
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}known: {', '.join(choices)}"


def unknown(kind: str, name: str, choices: Iterable[str]) -> BenchError:
    choices = list(choices)
    return BenchError(f"unknown {kind} {name!r}", did_you_mean(name, choices))
