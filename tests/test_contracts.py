"""Optional method capabilities are declared (``bench.method.CAPABILITIES``), not probed: every
registered method that declares one implements it, and the harness's answer comes from the
declaration (``bench.method.supports``)."""
import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from bench import budget, runner
from bench.config import build_config
from bench.errors import BenchError
from bench.method import CAPABILITIES, BudgetMatchable, Countable, Method, RunContext, SteppedBudget, members, supports
from bench.registry import get_method, method_table
from bench.suites import DatasetSpec, RunSpec, Suite


def _kind(owner: type, name: str) -> type:
    """How ``name`` is defined on ``owner``: a classmethod, a staticmethod or a plain function."""
    return type(inspect.getattr_static(owner, name))


@pytest.mark.parametrize("name", sorted(method_table()))
def test_every_declared_capability_is_implemented(name):
    cls = get_method(name)
    cfg = build_config(cls.Config)
    for cap in CAPABILITIES:
        if not supports(cls, cap):
            continue
        hints = typing.get_type_hints(cap)
        for member in members(cap):
            proto = inspect.getattr_static(cap, member, None)
            if proto is None:  # a data member: its value has the declared type
                assert typing.get_origin(hints[member]) is typing.ClassVar, (name, member)
                value = getattr(cls, member)
                assert isinstance(value, tuple) and value and all(isinstance(v, str) for v in value), (name, member)
                continue
            impl = getattr(cls, member)
            assert callable(impl), (name, member)
            assert _kind(cls, member) is _kind(cap, member), (name, member)  # classmethod where declared so
            want = list(inspect.signature(getattr(cap, member)).parameters)
            assert list(inspect.signature(impl).parameters)[:len(want)] == want, (name, member)
        if cap is BudgetMatchable:  # each knob is an int field of the method's config
            fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
            assert all(isinstance(fields.get(k), int) for k in cls.budget_knobs), (name, cls.budget_knobs)
        if cap is SteppedBudget:
            knobs = cls.budget_knobs if supports(cls, BudgetMatchable) else ()
            assert all(isinstance(cls.budget_step(cfg, k), int) and cls.budget_step(cfg, k) >= 1 for k in knobs)


def test_each_capability_is_declared_by_some_registered_method():
    """The contract check above is not vacuous; a budget needs a count; nothing is half-declared."""
    classes = [get_method(n) for n in method_table()]
    for cap in CAPABILITIES:
        assert any(supports(c, cap) for c in classes), cap.__name__
    for c in classes:  # nothing half-declared: all of Countable or none; knobs and steps only with a count
        present = {getattr(c, m, None) is not None for m in members(Countable)}
        assert len(present) == 1, c.__name__
        if getattr(c, "budget_knobs", None) is not None or supports(c, SteppedBudget):
            assert supports(c, BudgetMatchable), c.__name__
    assert not any(supports(Method, cap) for cap in CAPABILITIES)  # the base contract declares none


@dataclasses.dataclass(frozen=True)
class WidthConfig:
    width: int = 1


class Plain(Method):
    """A throwaway method that declares no capability."""

    Config = WidthConfig


class Matchable(Plain):
    """Declares BudgetMatchable: ten trainable parameters per unit of width."""

    budget_knobs = ("width",)

    def prepare(self, split, backbone=None) -> None:
        self.prepared = True

    def trainable_count(self) -> int:
        return 10 * self.config.width


class Stepped(Matchable):
    """Declares SteppedBudget too: widths in multiples of 4."""

    @classmethod
    def budget_step(cls, config, knob: str) -> int:
        return 4


def test_the_harness_answers_from_the_declaration(tmp_path, monkeypatch):
    assert [c for c in CAPABILITIES if supports(Plain, c)] == []
    assert supports(Matchable, Countable) and supports(Matchable, BudgetMatchable)
    assert not supports(Matchable, SteppedBudget) and supports(Stepped, SteppedBudget)
    with pytest.raises(ValueError, match="not a method capability"):
        supports(Matchable, typing.Protocol)

    # a budget: refused for a method without the capability, with the same errors as ever
    with pytest.raises(BenchError, match="Plain has no budget knobs") as info:
        budget.match(Plain, WidthConfig(), 100, None, None)
    assert info.value.fix == "use `budget` only with LLM methods"
    ctx = RunContext("ml100k", 0, "cpu", tmp_path, tmp_path / "a", "fp", progress=False)
    with pytest.raises(BenchError, match="Plain cannot count its trainable parameters"):
        budget.trainable_count(Plain, WidthConfig(), None, ctx, object())
    # and taken where declared: the matcher searches the declared knob, in the declared steps
    cfg, got = budget.match(Matchable, WidthConfig(), 1000, None, ctx, backbone=object())
    assert cfg.width == 100 and got["matched"] == 1000 and got["knobs"] == {"width": 100}
    cfg, got = budget.match(Stepped, WidthConfig(), 1010, None, ctx, backbone=object())
    assert cfg.width % 4 == 0 and abs(got["matched"] - 1010) <= 0.02 * 1010

    # planning a suite: the runner refuses a budget entry the same way, from the same declaration
    classes = {"plain": Plain, "matchable": Matchable}
    monkeypatch.setattr(runner, "get_method", lambda name: classes[name])
    ds = DatasetSpec("ml100k")
    suite = Suite("s", "", (0,), (ds,), ())
    with pytest.raises(BenchError, match="suite s: plain cannot take a budget") as info:
        runner._entry_runs(suite, ds, RunSpec("plain", None, {}, None, 1000), [0])
    assert info.value.fix == "use budget with LLM methods only"
    planned = runner._entry_runs(suite, ds, RunSpec("matchable", None, {}, None, 1000), [0, 1])
    assert [r.key.variant for r in planned] == ["default@budget-1000"] * 2
    assert runner._entry_runs(suite, ds, RunSpec("plain", None, {}, None, None), [0])  # no budget: fine
