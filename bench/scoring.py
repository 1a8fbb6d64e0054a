"""``python -m bench score``: a finished run's saved trained state applied to new rows, no training.

The run's record says everything needed: the method and its config, the split (source dataset +
transforms, checked by fingerprint) and where the trained state is (``artifacts["trained_state"]``,
written by ``bench run`` into the run's artifact directory in the cache; ``bench.llm.saved``).

The rows come as a CSV with columns ``user`` and ``item`` (the split's ids, as in the records and
the split's tables), optionally ``label`` (0/1: then the metrics are reported) and ``timestamp``.
Each row gets its prompt fields (title, history, ...) from the rebuilt split:

* a row that IS a row of the split (same user and item, and same timestamp when the CSV has
  one; the latest such row otherwise) is scored exactly as the run scored it: its own history,
  so a saved state re-scores its run's test rows to the recorded test AUC;
* any other row takes the user's history as it stands after the user's last train row (that
  row's history plus its item when it was liked): ``history="all"`` takes the user's last row in
  any part (train, valid, test) instead. A user without such a row gets an empty history;
* a user or item the split never mentions (no row of that user; no title for that item) has no
  prompt and no ID the method was built with: such rows are refused, all of them listed.

Users and items the split mentions but train never saw (cold ones) are scored as the method
scores cold IDs in its own test rows (an untrained table row, the CF model's vector for it, an
empty history). Methods whose user vector is per split row (CoLLM / CoRA with SASRec) score only
rows of the split.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BenchError

REQUIRED = ("user", "item")
OPTIONAL = ("label", "timestamp")
HISTORIES = ("train", "all")
# list columns that accumulate a user's items: base column -> the label that appends to it
ACCUMULATE = {"history": 1, "disliked": 0}
NO_TIME = np.iinfo(np.int64).max  # a new row without a timestamp: after everything the split holds


def read_rows(path: Path) -> pd.DataFrame:
    """The CSV of rows to score, checked: ``user``, ``item`` ints, ``label`` 0/1 if given."""
    path = Path(path)
    fix = "give a CSV with a header line user,item (optional: label, timestamp), one row per line"
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise BenchError(f"--rows {path}: no such file", fix) from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise BenchError(f"--rows {path}: not a readable CSV ({type(e).__name__}: {e})", fix) from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise BenchError(f"--rows {path} lacks column(s) {missing} (has {list(table.columns)})", fix)
    if table.empty:
        raise BenchError(f"--rows {path} has no rows", fix)
    for col in REQUIRED + tuple(c for c in OPTIONAL if c in table.columns):
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            lines = (np.flatnonzero(bad.to_numpy())[:5] + 2).tolist()  # 1-based, after the header
            raise BenchError(f"--rows {path}: column {col!r} holds non-integers (line(s) {lines})",
                             f"{col} must be the split's integer ids" if col in REQUIRED else f"{col} must be ints")
        table[col] = values.astype("int64")
    if "label" in table and not table["label"].isin([0, 1]).all():
        raise BenchError(f"--rows {path}: label must be 0 or 1", "leave label out to score unlabelled rows")
    return table


def _unknown(kind: str, ids: np.ndarray) -> str:
    ids = sorted(set(ids.tolist()))
    shown = ", ".join(map(str, ids[:10])) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
    return f"{kind} {shown}"


def prompt_rows(split: Any, table: pd.DataFrame, history: str = "train") -> tuple[pd.DataFrame, np.ndarray]:
    """The rows as the method reads them (the split's columns), and which were rows of the split."""
    if history not in HISTORIES:
        raise BenchError(f"history {history!r} is not one of {HISTORIES}", "use train (default) or all")
    parts = [("train", split.train), ("valid", split.valid), ("test", split.test)]
    every = pd.concat([df.assign(_part=n, _order=np.arange(len(df))) for n, df in parts], ignore_index=True)
    # time order, ties in part then table order: the last row of a user is its latest
    every = every.sort_values(["timestamp", "_part", "_order"], key=lambda c: c.map({"train": 0, "valid": 1, "test": 2})
                              if c.name == "_part" else c, kind="stable").reset_index(drop=True)
    columns = [c for c in split.test.columns]
    key = ["user", "item"] + (["timestamp"] if "timestamp" in table else [])
    found = every.drop_duplicates(key, keep="last").set_index(key)
    idx = pd.MultiIndex.from_frame(table[key]) if len(key) > 1 else pd.Index(table[key[0]])
    pos = found.index.get_indexer(idx)
    matched = pos >= 0

    # per-item attributes (title, author, ...) from targets and from history lists
    attrs = {"title": {}}
    if "author" in every:
        attrs["author"] = {}
    for attr, values in attrs.items():
        for base in ACCUMULATE:
            listed = f"{base}_{attr}s"
            if base in every and listed in every:
                for items, vals in zip(every[base], every[listed]):
                    values.update(zip(list(items), list(vals)))
        values.update(zip(every["item"].tolist(), every[attr].tolist()))
    new = table.loc[~matched]
    bad_users = new["user"][~new["user"].isin(set(every["user"]))].to_numpy()
    bad_items = new["item"][~new["item"].isin(set(attrs["title"]))].to_numpy()
    if len(bad_users) or len(bad_items):
        what = " and ".join(_unknown(k, v) for k, v in (("user(s)", bad_users), ("item(s)", bad_items)) if len(v))
        raise BenchError(f"--rows: {what} appear nowhere in the run's split ({split.dataset}), so they have no "
                         f"prompt and no ID the method was built with ({len(bad_users) + len(bad_items)} such "
                         "values)", "drop those rows; ids are the split's own (as in its tables and the records)")

    old = found.reset_index().iloc[pos[matched]][columns].set_axis(np.flatnonzero(matched))
    fresh: list[dict[str, Any]] = []
    if (~matched).any():
        source = every[every["_part"] == "train"] if history == "train" else every
        last = source.drop_duplicates("user", keep="last").set_index("user")
        lists = [c for base in ACCUMULATE if base in every
                 for c in [base] + [f"{base}_{a}s" for a in attrs if f"{base}_{a}s" in every]]
        ucount, icount = split.train["user"].value_counts(), split.train["item"].value_counts()
        for i in np.flatnonzero(~matched):
            u, it = int(table["user"].iat[i]), int(table["item"].iat[i])
            row: dict[str, Any] = dict.fromkeys(columns)
            row.update(user=u, item=it, label=0,
                       timestamp=int(table["timestamp"].iat[i]) if "timestamp" in table else NO_TIME,
                       not_cold=int(u in ucount.index and it in icount.index),
                       warm=int(ucount.get(u, 0) > 3 and icount.get(it, 0) > 3))
            for attr, values in attrs.items():
                row[attr] = values[it]
            state = last.loc[u] if u in last.index else None
            for col in lists:  # the user's lists after their last row, that row's item added
                base = col.split("_")[0]
                row[col] = [] if state is None else list(state[col])
                if state is not None and int(state["label"]) == ACCUMULATE[base]:
                    row[col].append(state["item"] if col == base else state[col[len(base) + 1:-1]])
            fresh.append(row)
    new = pd.DataFrame(fresh, index=np.flatnonzero(~matched), columns=columns)
    out = (pd.concat([old, new]) if len(new) and len(old) else (old if len(old) else new)).sort_index()
    out = out.reset_index(drop=True)
    for col in ("user", "item", "timestamp", "not_cold", "warm"):
        if col in out:
            out[col] = out[col].astype("int64")
    out["label"] = table["label"].to_numpy() if "label" in table else 0
    return out, matched


def rebuild_split(record: Any, data_dir: str | None = None) -> Any:
    """The run's split, as the runner built it: the source dataset and the recorded transforms,
    checked against the recorded fingerprint."""
    from bench.data import DATASETS, load_full, transforms

    info = record.split
    if info.source not in DATASETS and record.suite_file and not record.suite_file.startswith("builtin:"):
        from bench.suites import load_suite

        try:  # a dataset declared in the suite file is registered by loading it
            load_suite(record.suite_file)
        except BenchError:
            pass
    if info.source not in DATASETS:
        raise BenchError(f"the run's dataset {info.source!r} is not registered here",
                         "declare it as the run's suite file did, or install the package that provides it")
    split = transforms.apply(load_full(info.source, data_dir), [dict(s) for s in info.transforms])
    if split.fingerprint != info.fingerprint:
        raise BenchError(f"the {info.source} split rebuilt here ({split.fingerprint}) is not the run's "
                         f"({info.fingerprint})", "point --data-dir / RECBENCH_DATA_DIR at the data the run read")
    return split


def state_dir(record: Any) -> Path:
    """The saved trained state a run record names; BenchError where it names none or it is gone."""
    from bench import trained_state as saved

    key = record.key
    state = record.artifacts.get("trained_state")
    if not state:
        raise BenchError(f"the record of {key.method} ({key.variant}, seed {key.seed}) names no saved trained state",
                         f"runs save one unless {saved.ENV} says not to (0, or a state over its size limit, "
                         f"{saved.DEFAULT_MAX_MB} MB unless set: CoRA's is larger); records older than that have none. Rerun it "
                         f"with {saved.ENV}=always `python -m bench run ... --force`")
    state = Path(state)
    if not state.is_dir():
        raise BenchError(f"the run's saved state {state} is not there (the cache was cleared, or the run ran "
                         "on another machine)", "copy that folder here, or rerun the run with --force")
    return state


def restore(record: Any, split: Any, device: str = "cpu", work_dir: Path | None = None) -> Any:
    """The run's method rebuilt from its saved state (BenchError if it has none)."""
    import tempfile

    from bench.config import build_config
    from bench import trained_state as saved
    from bench.method import RunContext
    from bench.registry import get_method

    key = record.key
    state = state_dir(record)
    manifest = saved.read_manifest(state)
    cls = get_method(key.method)
    if manifest.get("method") != f"{cls.__module__}:{cls.__qualname__}":
        raise BenchError(f"saved state {state} is of {manifest.get('method')}, and {key.method} is "
                         f"{cls.__module__}:{cls.__qualname__} here", "score with the recbench version that ran it")
    config = build_config(cls.Config, manifest["config"])
    ctx = RunContext(dataset=key.dataset, seed=key.seed, device=device, work_dir=Path(work_dir or tempfile.gettempdir()),
                     artifact_dir=state.parent, split_fingerprint=split.fingerprint,
                     run_name=f"{key.dataset}__{key.method}__{key.variant}__seed{key.seed}", progress=False,
                     export_artifacts=False)  # the run's artifacts are there already
    method = cls(config, ctx)
    method.restore(split, state)
    return method


def score(record_path: Path, rows_path: Path, data_dir: str | None = None, device: str = "auto",
          history: str = "train") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The CSV's rows with a ``score`` (and ``in_split``) column, and a summary (metrics when labelled)."""
    from bench import records, workdirs
    from bench.metrics import evaluate
    from bench.runner import resolve_device

    if not Path(record_path).is_file():
        raise BenchError(f"--run {record_path}: no such file", "pass a run's record, e.g. results/<suite>/<run>.json")
    record = records.load_record(Path(record_path))
    if getattr(record, "kind", None) != "run":
        raise BenchError(f"--run {record_path} is a {record.kind} record, not a run's", "pass a run record")
    if record.status != "ok":
        raise BenchError(f"--run {record_path} is a failed run", "score with a finished run's record")
    if history not in HISTORIES:
        raise BenchError(f"--history {history!r} is not one of {HISTORIES}", "use train (default) or all")
    state_dir(record)  # before any work
    table = read_rows(rows_path)
    device = resolve_device(device)
    split = rebuild_split(record, data_dir)
    rows, matched = prompt_rows(split, table, history)
    with workdirs.scratch(record.key.method) as work:
        method = restore(record, split, device, work)
        try:
            scores = np.asarray(method.score(rows), dtype=float)
        except BenchError as e:
            if matched.all():
                raise
            raise BenchError(f"{e.problem} ({int((~matched).sum())} of the rows are not rows of the run's split)",
                             f"{e.fix}; this method may score only rows of its split") from None
    out = table.copy()
    out["score"] = scores
    out["in_split"] = matched
    summary: dict[str, Any] = {"rows": len(out), "in_split": int(matched.sum()), "state": record.artifacts["trained_state"]}
    if "label" in table:
        try:
            summary["metrics"] = evaluate(rows, scores)
        except ValueError as e:
            summary["metrics_error"] = str(e)
    return out, summary


def score_command(record_path: Path, rows_path: Path, out: Path | None, data_dir: str | None, device: str,
                  history: str) -> int:
    """The CLI's ``score``: scores to ``out`` (CSV) or stdout, the summary to stderr."""
    table, summary = score(record_path, rows_path, data_dir, device, history)
    if out is None:
        table.to_csv(sys.stdout, index=False)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    line = f"scored {summary['rows']} rows ({summary['in_split']} of them rows of the run's split)"
    m = summary.get("metrics")
    if m:
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        line += f": auc={fmt(m.get('auc'))} uauc={fmt(m.get('uauc'))}"
    print(line + (f"; wrote {out}" if out is not None else ""), file=sys.stderr)
    return 0
