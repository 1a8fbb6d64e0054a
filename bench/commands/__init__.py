"""The subcommands of ``python -m bench``, one module each, all with the same interface:

- ``NAME``: the subcommand (``scoring-speed``), ``HELP``: its line in ``--help``, ``DESCRIPTION``:
  the text atop its own ``--help`` (None: none);
- ``add_arguments(parser)``: its flags; ``execute(args) -> int``: does the work, returns the exit
  status, raises ``BenchError`` on bad input (the CLI prints it and exits 2).

A module imports nothing heavy at the top: ``execute`` imports what it needs. ``COMMANDS`` is the
table ``bench.cli`` builds its parser from, in ``--help`` order; a new subcommand is a module here
and a line in it.
"""
from __future__ import annotations

from types import ModuleType

from bench.commands import efficiency, ls, overhead, report, run, score, scoring_speed, tune

COMMANDS: dict[str, ModuleType] = {m.NAME: m for m in (run, tune, ls, efficiency, scoring_speed, overhead, score,
                                                        report)}
