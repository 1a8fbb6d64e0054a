"""Every RecBole 1.2.1 breakage we work around, in one place (the verified dependency set is
pinned in constraints.txt).

Import RecBole only through ``recbole_session()``; nothing else in recbench touches these.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator


def _patch_scipy_dok() -> None:
    # scipy >= 1.13 removed dok_matrix._update, used by LightGCN/NGCF graph builders.
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        def _update(self, data):  # noqa: ANN001
            for key, value in data.items():
                self[key] = value

        sp.dok_matrix._update = _update  # type: ignore[attr-defined]


def _patch_numpy_aliases() -> None:
    # numpy 2 removed aliases RecBole's Config still names; harmless on numpy 1.26.
    import numpy as np

    for alias, target in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_"), ("bool8", "bool_")):
        if alias not in np.__dict__:
            setattr(np, alias, getattr(np, target))


class _NullWriter:
    """Stands in for RecBole's TensorBoard writer, which would litter ./log_tensorboard."""

    def add_scalar(self, *a, **k) -> None: ...
    def add_hparams(self, *a, **k) -> None: ...
    def close(self) -> None: ...


_patched = False


def _import_recbole() -> None:
    global _patched
    if _patched:
        return
    _patch_numpy_aliases()
    _patch_scipy_dok()
    import torch

    anomaly = torch.is_anomaly_enabled()
    import recbole.model.sequential_recommender  # noqa: F401  (imports sine.py)
    import recbole.trainer.trainer as rb_trainer

    # sine.py turns anomaly detection on for the whole process (~1.5x slower); undo it.
    torch.autograd.set_detect_anomaly(anomaly)
    rb_trainer.get_tensorboard = lambda logger: _NullWriter()
    _patched = True


@contextlib.contextmanager
def recbole_session() -> Iterator[None]:
    """Import RecBole safely and shield the process from its global side effects.

    - its Config parses ``sys.argv`` and ranks ``--key=value`` above config_dict, so our own
      CLI flags would leak into it: argv is emptied for the duration;
    - it sets CUDA_VISIBLE_DEVICES: restored afterwards;
    - it logs through the root logger (its trainer's epoch lines, a weight_decay + reg_weight
      notice for every graph model): the root level is ERROR for the duration only, so our own
      loggers, which set their level, still speak, and nothing changes after the session.
    """
    import logging

    _import_recbole()
    argv, cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    root = logging.getLogger()
    level = root.level
    sys.argv = [argv[0] if argv else "recbench"]
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # pandas 2.x chained-fillna and torch.cuda.amp deprecation notices from RecBole's
            # own code (pandas < 3 is pinned exactly so those fillna calls still work).
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="torch.sparse", category=UserWarning)
            yield
    finally:
        sys.argv = argv
        root.setLevel(level)
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def load_checkpoint(path: str, device) -> dict:
    """RecBole's own best-model checkpoint (it pickles its config, so weights_only must be off;
    torch >= 2.6 defaults it on). Only ever used on files RecBole just wrote in our work dir."""
    import torch

    return torch.load(path, map_location=device, weights_only=False)


@contextlib.contextmanager
def quick_start_session(work_dir: Path) -> Iterator[None]:
    """Around RecBole's own ``run_recbole``, which our ``fit`` does not use:

    - it reloads its best checkpoint with a bare ``torch.load`` (weights_only defaults on since
      torch 2.6, and the checkpoint pickles RecBole's config): off for this call only, on files
      it just wrote in our work dir;
    - its logger writes ``./log/`` and may add root handlers: cwd is the work dir, and any root
      handler it adds is closed and removed afterwards.
    """
    import logging

    root = logging.getLogger()
    handlers, level, cwd = list(root.handlers), root.level, os.getcwd()
    old = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    work_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    os.chdir(work_dir)
    try:
        with recbole_session(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # ray, via the quick start
            warnings.filterwarnings("ignore", message="distutils Version classes")  # thop, in its FLOPs count
            yield
    finally:
        os.chdir(cwd)
        if old is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = old
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        root.setLevel(level)
