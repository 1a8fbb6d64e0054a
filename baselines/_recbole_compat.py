"""Every RecBole 1.2.1 breakage we work around, in one place (see ENVIRONMENT.md).

Import RecBole only through ``recbole_session()``; nothing else in recbench touches these.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
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
    - it sets CUDA_VISIBLE_DEVICES: restored afterwards.
    """
    _import_recbole()
    argv, cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = [argv[0] if argv else "recbench"]
    try:
        with warnings.catch_warnings():
            # pandas 2.x chained-fillna and torch.cuda.amp deprecation notices from RecBole's
            # own code (pandas < 3 is pinned exactly so those fillna calls still work).
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="torch.sparse", category=UserWarning)
            yield
    finally:
        sys.argv = argv
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def load_checkpoint(path: str, device) -> dict:
    """RecBole's own best-model checkpoint (it pickles its config, so weights_only must be off;
    torch >= 2.6 defaults it on). Only ever used on files RecBole just wrote in our work dir."""
    import torch

    return torch.load(path, map_location=device, weights_only=False)
