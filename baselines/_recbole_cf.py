"""Shared runner for the collaborative-filtering baselines: RecBole's model classes, data
pipeline and trainer on recbench's splits, written as atomic files with ``benchmark_filename``.

Two named training protocols:
- ``bce``: pointwise BCE on the labelled train rows, early stop on valid AUC (the CoLLM-family
  baselines). The model's ``calculate_loss`` is swapped for BCE on ``predict``.
- ``recbole``: RecBole's native training (pairwise BPR with uniform negatives for MF /
  LightGCN / NGCF, full-softmax CE for SASRec) on the train positives only.
Either way graph models are built on the train-positive graph only, and scoring is
``model.predict`` on the labelled valid/test rows, in row order.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bench.config import require
from bench.embeddings import CFEmbeddings, embeddings_path, save
from bench.data.schema import Split
from bench.method import Method, RunContext

from baselines._recbole_compat import load_checkpoint, quick_start_session, recbole_session

PROTOCOLS = ("bce", "recbole")
# CoLLM's baseline scripts' grid (PROTOCOLS-BASELINES.md): what `bench tune` searches by default
PUBLISHED_GRID: dict[str, list[Any]] = {
    "learning_rate": [1e-1, 1e-2, 1e-3, 1e-4],
    "weight_decay": [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 0.0],
    "embedding_size": [64, 128, 256],
}
CF_WEIGHTS = "model.pt"  # a saved state's weights (see save_state)
SEQ_PAD = "0"  # recbench item ids start at 1; "0" opens every history (as CoLLM's padding id)


@dataclasses.dataclass(frozen=True)
class CFConfig:
    protocol: str = "bce"  # bce (pointwise, CoLLM baselines) | recbole (native pairwise / CE)
    embedding_size: int = 64  # width of user/item embeddings
    learning_rate: float = 1e-3  # Adam
    weight_decay: float = 1e-4  # Adam weight decay (published MF search: 1e-4)
    train_batch_size: int = 2048
    eval_batch_size: int = 8192
    epochs: int = 500  # upper bound; early stopping decides
    stopping_step: int = 20  # patience, in evaluations without valid-AUC improvement
    eval_step: int = 1  # evaluate on valid every N epochs
    # also log each evaluation's AUC on a seeded sample of train rows (fit info "curve"): a train
    # AUC racing ahead while valid peaks early tells a label leak or overfitting from slow learning
    log_train_auc: bool = False
    # graph models (LightGCN, NGCF) under ``bce``: every train positive is a graph edge and no
    # negative is, so a model can learn "is (u, i) an edge", which no valid/test row is. keep: the
    # published training; drop: each batch propagates over the graph without its own positive edges
    own_edge: str = "keep"

    def validate(self) -> None:
        owner = type(self).__name__
        require(self.protocol in PROTOCOLS, owner, f"protocol {self.protocol!r} is unknown",
                f"use one of {PROTOCOLS}")
        for name in ("embedding_size", "train_batch_size", "eval_batch_size", "epochs", "stopping_step", "eval_step"):
            require(getattr(self, name) > 0, owner, f"{name} must be > 0", f"set {name} to a positive int")
        require(self.learning_rate > 0, owner, "learning_rate must be > 0", "e.g. 1e-3")
        require(self.weight_decay >= 0, owner, "weight_decay must be >= 0", "e.g. 1e-4")
        require(self.own_edge in ("keep", "drop"), owner, f"own_edge {self.own_edge!r} is unknown",
                "use keep (published) or drop")

    def model_params(self) -> dict[str, Any]:
        """RecBole keys specific to the model (subclasses add theirs)."""
        return {}


class RecBoleCF(Method):
    """Base of the four CF baselines; a subclass names the RecBole model and its config."""

    recbole_model: ClassVar[str]
    sequential: ClassVar[bool] = False
    native_neg_sampling: ClassVar[dict | None] = {"distribution": "uniform", "sample_num": 1}
    variants = {"bce": {"protocol": "bce"}, "recbole": {"protocol": "recbole"}}
    default_variant = "bce"
    reference_variant = "recbole"  # RecBole's quick start trains natively
    search_space = dict(PUBLISHED_GRID)

    def __init__(self, config: CFConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.model = None
        self.dataset = None
        self.fit_info: dict[str, Any] = {}
        self._artifacts: dict[str, str] = {}

    # ---- atomic files -------------------------------------------------------------------
    def _write_atomic(self, split: Split, root: Path, name: str) -> None:
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        max_len = getattr(self.config, "max_seq_length", 50)
        for part in ("train", "valid", "test"):
            df = getattr(split, part)
            if part == "train" and self.config.protocol == "recbole":
                df = df[df["label"] == 1]  # pairwise / CE training treats every row as positive
            out = pd.DataFrame({
                "user_id:token": df["user"].astype(str),
                "item_id:token": df["item"].astype(str),
                "label:float": df["label"].astype(float),
                "timestamp:float": df["timestamp"].astype(float),
            })
            if self.sequential:
                # history capped to the last max_len - 1 items, opened by the padding token
                out["item_id_list:token_seq"] = df["history"].map(
                    lambda h: " ".join([SEQ_PAD] + [str(i) for i in h[-(max_len - 1):]])
                )
            out.to_csv(d / f"{name}.{part}.inter", sep="\t", index=False)

    def _recbole_config(self, root: Path, name: str) -> dict[str, Any]:
        cfg = self.config
        native = cfg.protocol == "recbole"
        load_col = ["user_id", "item_id", "label", "timestamp"] + (["item_id_list"] if self.sequential else [])
        use_gpu = self.ctx.device.startswith("cuda")
        return {
            "data_path": str(root), "dataset": name,
            "benchmark_filename": ["train", "valid", "test"],
            "field_separator": "\t", "seq_separator": " ",
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
            "LABEL_FIELD": "label", "TIME_FIELD": "timestamp",
            "load_col": {"inter": load_col},
            # Without the alias RecBole remaps item_id_list into its own token space, silently
            # pairing history positions with the wrong item embeddings.
            "alias_of_item_id": ["item_id_list"] if self.sequential else None,
            "eval_args": {"mode": "labeled", "order": "TO", "group_by": None, "split": None},
            "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC",
            "train_neg_sample_args": self.native_neg_sampling if native else None,
            "embedding_size": cfg.embedding_size,
            "learning_rate": cfg.learning_rate, "weight_decay": cfg.weight_decay,
            "train_batch_size": cfg.train_batch_size, "eval_batch_size": cfg.eval_batch_size,
            "epochs": cfg.epochs, "stopping_step": cfg.stopping_step, "eval_step": cfg.eval_step,
            "seed": self.ctx.seed, "reproducibility": True,
            "use_gpu": use_gpu, "gpu_id": self.ctx.device.split(":")[1] if ":" in self.ctx.device else "0",
            "checkpoint_dir": str(root / "saved"), "show_progress": False,
            "state": "WARNING", "log_wandb": False, "worker": 0,
            **cfg.model_params(),
        }

    # ---- Method contract ----------------------------------------------------------------
    def _build(self, split: Split) -> tuple[Any, Any, Any]:
        """RecBole's config, data and the untrained model on ``split`` (in a ``recbole_session``):
        what ``fit`` trains and ``restore`` loads a saved state into. Returns (config, train, valid)."""
        root, name = self.ctx.work_dir / "recbole", f"rb_{split.dataset.replace('-', '_')}"
        self._write_atomic(split, root, name)
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, init_seed

        model_cls = get_model(self.recbole_model)
        if self.config.own_edge == "drop" and not hasattr(model_cls, "get_norm_adj_mat"):
            from bench.errors import BenchError

            raise BenchError(f"{type(self).__name__}: own_edge drop needs a graph model",
                             "use own_edge: keep (only LightGCN and NGCF propagate over the train graph)")
        if self.config.protocol == "bce":
            model_cls = _pointwise(model_cls, drop_own_edge=self.config.own_edge == "drop")
        config = Config(model=model_cls, dataset=name, config_dict=self._recbole_config(root, name))
        init_seed(self.ctx.seed, True)
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        init_seed(self.ctx.seed, True)
        # Graph models read dataset.inter_matrix(): give them the train positives only.
        train_ds = train_data.dataset
        graph_ds = train_ds.copy(train_ds.inter_feat[train_ds.inter_feat["label"] > 0])
        self.model = model_cls(config, graph_ds).to(config["device"])
        self.dataset, self._device = dataset, config["device"]
        return config, train_data, valid_data

    def fit(self, split: Split) -> dict[str, Any]:
        with recbole_session():
            from recbole.trainer import Trainer

            config, train_data, valid_data = self._build(split)
            trainer = Trainer(config, self.model)
            curve: list[dict[str, float]] = []
            best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False,
                                        callback_fn=lambda epoch, auc: self._after_eval(split, curve, epoch, auc))
            # Evaluate the best epoch, not the last (RecBole's reload needs weights_only off).
            ckpt = load_checkpoint(trainer.saved_model_file, config["device"])
            self.model.load_state_dict(ckpt["state_dict"])
            self.model.load_other_parameter(ckpt.get("other_parameter"))
            self.model.eval()
            self.fit_info = {"best_epoch": int(ckpt.get("epoch", -1)),
                             "best_valid_auc_recbole": float(best_valid or float("nan")),
                             "protocol": self.config.protocol, "curve": curve}
        if self.ctx.export_artifacts:
            self._save_embeddings(split)
        return self.fit_info

    def save_state(self, directory: Path) -> Path | None:
        """The best epoch's weights (``model.pt``, a plain state dict) and the fit info, in the
        format every saved state shares (``bench.llm.saved.write_state``); None where
        RECBENCH_SAVE_STATE says not to (0, or a state over its size limit)."""
        import shutil

        import torch

        from bench.config import config_dict
        from bench import trained_state as saved

        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        if saved.max_bytes() < sum(t.numel() * t.element_size() for t in weights.values()):
            shutil.rmtree(directory, ignore_errors=True)  # an earlier run's state is not this run's
            return None

        def write(tmp: Path) -> dict[str, Any]:
            torch.save(weights, tmp / CF_WEIGHTS)
            return {"method": f"{type(self).__module__}:{type(self).__qualname__}", "config": config_dict(self.config),
                    "split_fingerprint": self.ctx.split_fingerprint, "seed": self.ctx.seed, "fit": self.fit_info}

        return saved.write_state(directory, write)

    def restore(self, split: Split, directory: Path) -> None:
        """The model built on ``split`` as ``fit`` builds it, with the saved weights loaded and no
        training; it then scores (and exports embeddings) as the run that saved it did."""
        import torch

        from bench.errors import BenchError
        from bench import trained_state as saved

        manifest = saved.read_manifest(directory)
        if manifest.get("split_fingerprint") != self.ctx.split_fingerprint:
            raise BenchError(f"saved state {directory} was trained on split {manifest.get('split_fingerprint')}, not "
                             f"on this one ({self.ctx.split_fingerprint})",
                             "rebuild the run's split (same dataset, same transforms)")
        with recbole_session():
            self._build(split)
            weights = torch.load(Path(directory) / CF_WEIGHTS, map_location=self._device, weights_only=True)
            self.model.load_state_dict(weights)
            self.model.eval()
        self.fit_info = dict(manifest.get("fit") or {})
        if self.ctx.export_artifacts:
            self._save_embeddings(split)

    def _after_eval(self, split: Split, curve: list[dict[str, float]], epoch: int, valid_auc: float) -> None:
        """After each valid evaluation: log the epoch's valid AUC (and train AUC, when asked),
        then tell the harness (``RunContext.on_eval``: the tuner's pruner may stop the fit here)."""
        point = {"epoch": int(epoch), "valid_auc": round(float(valid_auc), 6)}
        if self.config.log_train_auc:
            from bench.metrics import auc

            rows = split.train.sample(n=min(len(split.train), self.config.eval_batch_size), random_state=self.ctx.seed)
            point["train_auc"] = round(float(auc(rows["label"].to_numpy(), self._predict(rows))), 6)
        curve.append(point)
        if self.ctx.on_eval is not None:
            self.ctx.on_eval(int(epoch), float(valid_auc))

    def reference_run(self, split: Split) -> dict[str, float]:
        """RecBole's quick start (``run_recbole``) on the same atomic files and config dict as
        ``fit``: what a RecBole user would run by hand. Its test AUC is RecBole's own."""
        from bench.errors import BenchError

        if self.config.protocol != "recbole":
            raise BenchError(f"RecBole's quick start trains natively, not with protocol {self.config.protocol!r}",
                             f"use the {self.reference_variant!r} variant for the reference run")
        root, name = self.ctx.work_dir / "quickstart", f"rb_{split.dataset.replace('-', '_')}"
        self._write_atomic(split, root, name)
        with quick_start_session(root):
            from recbole.quick_start import run_recbole

            result = run_recbole(model=self.recbole_model, dataset=name, config_dict=self._recbole_config(root, name))
        return {"auc": float(result["test_result"]["auc"])}

    def _ids(self, field: str, tokens) -> np.ndarray:  # noqa: ANN001
        """RecBole ids of our tokens; a token RecBole never saw gets its padding id 0. Under the
        ``recbole`` protocol the train file holds positives only, so a user or item whose train
        rows are all negative is unknown to it (reached when SASRec embeds every train row)."""
        table = self.dataset.field2token_id[field]
        return np.fromiter((table.get(t, 0) for t in tokens), dtype=np.int64, count=len(tokens))

    def _interaction_for(self, rows: pd.DataFrame):
        """RecBole Interaction for our rows (ids mapped through RecBole's token table)."""
        import torch
        from recbole.data.interaction import Interaction

        data = {
            "user_id": torch.as_tensor(self._ids("user_id", rows["user"].astype(str).to_numpy())),
            "item_id": torch.as_tensor(self._ids("item_id", rows["item"].astype(str).to_numpy())),
        }
        if self.sequential:
            max_len = self.config.max_seq_length
            seqs = [[SEQ_PAD] + [str(i) for i in h[-(max_len - 1):]] for h in rows["history"]]
            mat = np.zeros((len(seqs), max_len), dtype=np.int64)
            lens = np.zeros(len(seqs), dtype=np.int64)
            for r, s in enumerate(seqs):
                ids = self._ids("item_id", s)
                mat[r, : len(ids)] = ids
                lens[r] = len(ids)
            data["item_id_list"] = torch.as_tensor(mat)
            data["item_length"] = torch.as_tensor(lens)
        return Interaction(data)

    def score(self, rows: pd.DataFrame) -> np.ndarray:
        with recbole_session():
            return self._predict(rows)

    def _predict(self, rows: pd.DataFrame) -> np.ndarray:
        """``model.predict`` on our rows in batches, in row order, in eval mode (the mode the
        model was in is restored: this also runs between training epochs)."""
        import torch

        out = []
        bs = self.config.eval_batch_size
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(rows), bs):
                    inter = self._interaction_for(rows.iloc[start:start + bs]).to(self._device)
                    out.append(self.model.predict(inter).float().cpu().numpy())
        finally:
            self.model.train(was_training)
        return np.concatenate(out) if out else np.zeros(0)

    def param_counts(self) -> dict[str, int]:
        params = list(self.model.parameters())
        return {"trainable": int(sum(p.numel() for p in params if p.requires_grad)),
                "total": int(sum(p.numel() for p in params))}

    def artifacts(self) -> dict[str, str]:
        return self._artifacts

    # ---- embeddings for the LLM methods ------------------------------------------------
    def embedding_tables(self) -> tuple[Any, Any]:
        """(user, item) embedding tensors in RecBole's internal id order."""
        return self.model.user_embedding.weight, self.model.item_embedding.weight

    def row_user_embeddings(self, rows: pd.DataFrame):
        """Per-row user representations where the model has no user table (SASRec), else None."""
        return None

    def _save_embeddings(self, split: Split) -> None:
        import torch

        with torch.no_grad():
            users, items = self.embedding_tables()
        users = users.detach().float().cpu().numpy() if users is not None else None
        items = items.detach().float().cpu().numpy()
        ds = self.dataset
        # Re-index from RecBole's internal ids into recbench ids (row i = recbench id i).
        item_tokens = [str(i) for i in range(split.n_items)]
        known = [t for t in item_tokens if t in ds.field2token_id["item_id"]]
        item_tab = np.zeros((split.n_items, items.shape[1]), dtype=np.float32)
        item_tab[[int(t) for t in known]] = items[ds.token2id("item_id", known)]
        user_tab = None
        if users is not None:
            user_tokens = [str(u) for u in range(split.n_users)]
            known_u = [t for t in user_tokens if t in ds.field2token_id["user_id"]]
            user_tab = np.zeros((split.n_users, users.shape[1]), dtype=np.float32)
            user_tab[[int(t) for t in known_u]] = users[ds.token2id("user_id", known_u)]
        rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for part, df in split.parts():
            per_row = self.row_user_embeddings(df)
            if per_row is not None:  # keyed by (user, item, timestamp): rows are found by value
                rows[part] = (df[["user", "item", "timestamp"]].to_numpy(dtype=np.int64), per_row)
        path = embeddings_path(self.ctx.artifact_dir)
        save(path, CFEmbeddings(self.ctx.run_name or type(self).__name__, item_tab, user_tab, rows or None))
        self._artifacts["embeddings"] = str(path)


_POINTWISE: dict[tuple[type, bool], type] = {}


def _pointwise(model_cls: type, drop_own_edge: bool = False) -> type:
    """The RecBole model with its loss replaced by BCE-with-logits of ``predict`` on the label;
    with ``drop_own_edge`` (graph models) each training batch propagates over the train graph
    minus the batch's own positive edges, as no valid/test row's pair is an edge."""
    key = (model_cls, drop_own_edge)
    if key not in _POINTWISE:
        import torch

        def bce(self, interaction):  # noqa: ANN001
            logits = self.predict(interaction)
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, interaction["label"].float())

        def calculate_loss(self, interaction):  # noqa: ANN001
            if not drop_own_edge:
                return bce(self, interaction)
            full, full_adj = self.interaction_matrix, self.norm_adj_matrix
            self.interaction_matrix = _without_edges(full, interaction, self.USER_ID, self.ITEM_ID)
            self.norm_adj_matrix = self.get_norm_adj_mat().to(full_adj.device)
            try:
                return bce(self, interaction)
            finally:
                self.interaction_matrix, self.norm_adj_matrix = full, full_adj

        # Same __name__ (RecBole reads its per-model defaults by it); published as a module
        # global so RecBole's checkpoint, which pickles the config holding the class, works.
        name = model_cls.__name__
        cls = type(name, (model_cls,), {"calculate_loss": calculate_loss,
                                        "__module__": __name__, "__qualname__": name + ("_DropOwnEdge" if drop_own_edge else "")})
        globals()[cls.__qualname__] = cls
        _POINTWISE[key] = cls
    return _POINTWISE[key]


def _without_edges(matrix, interaction, user_field: str, item_field: str):  # noqa: ANN001
    """The coo user x item matrix without the (user, item) pairs of the batch's positive rows."""
    import scipy.sparse as sp

    pos = interaction["label"] > 0
    users = interaction[user_field][pos].cpu().numpy()
    items = interaction[item_field][pos].cpu().numpy()
    n_items = matrix.shape[1]
    keep = ~np.isin(matrix.row.astype(np.int64) * n_items + matrix.col, users.astype(np.int64) * n_items + items)
    return sp.coo_matrix((matrix.data[keep], (matrix.row[keep], matrix.col[keep])), shape=matrix.shape)
