"""``python -m bench scoring-speed``: prompts scored per second by the harness's scorer against a
plain Hugging Face loop, same prompts, same backbone, one process, one device.

The plain loop is what the published repos do: corpus order, right padding, batch 16, the full
vocabulary projection at every position, then the Yes logit read at each row's last real token.
The harness path is ``LLMRecommender``'s own scoring (length-bucketed left-padded batches, the
vocabulary projection at the last position only, ``inference_mode``, bf16 on CUDA, and a
user's shared prompt prefix run once as a KV cache), reached through a recommender with no
adapters, so nothing but the scoring machinery is timed. Both must give the same scores
(checked, and the largest difference is recorded).

The prompts are the test rows of a seeded sample of users, all of each user's rows (the last
user cut to make ``n_rows``): that is what scoring a split looks like, where every row of a
user is scored, and what decides how much prefix there is to share."""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import records

log = logging.getLogger("bench")


def _plain_loop(bb: Any, prompts: list[list[int]], batch_size: int) -> np.ndarray:
    import torch

    from bench.llm.backbone import autocast

    pad = bb.tokenizer.pad_token_id
    out = []
    with torch.no_grad(), autocast(bb.device, bb.dtype):
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i:i + batch_size]
            T = max(map(len, chunk))
            ids = torch.full((len(chunk), T), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), T), dtype=torch.long)
            for b, p in enumerate(chunk):  # right padding
                ids[b, :len(p)] = torch.as_tensor(p)
                mask[b, :len(p)] = 1
            logits = bb.model(input_ids=ids.to(bb.device), attention_mask=mask.to(bb.device)).logits
            last = mask.sum(1).to(bb.device) - 1
            out.append(logits[torch.arange(len(chunk), device=bb.device), last, bb.yes_id].float().cpu().numpy())
    return np.concatenate(out)


def _whole_users(test, n_rows: int, seed: int):
    """All test rows of seeded-random users, user after user (each in the split's order), until
    ``n_rows``."""
    users = test["user"].drop_duplicates().sample(frac=1.0, random_state=seed).to_numpy()
    rank = test["user"].map({u: r for r, u in enumerate(users)}).to_numpy()
    return test.iloc[np.argsort(rank, kind="stable")[:n_rows]].reset_index(drop=True)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels.tolist())) == 2 else None


def measure(backbone: str, device: str, dataset: str, data_dir: str | None, n_rows: int,
            plain_batch: int = 16, harness_batch: int = 64, seed: int = 0, prompt: str = "id",
            dtypes: tuple[str, ...] = ("auto",)) -> dict[str, Any]:
    """The plain loop at the device's default precision, then the harness at each of ``dtypes``
    (``auto`` is that same precision; ``bfloat16`` on a CPU trades exactness for speed, so its
    scores are compared, not required to match)."""
    from bench.config import build_config
    from bench.data import load_split
    from bench.llm.backbone import pick_dtype, synchronize
    from bench.llm.prefix import plan
    from bench.llm.recommender import LLMRecommender
    from bench.method import RunContext
    from scipy.stats import spearmanr
    import torch

    class ScoringOnly(LLMRecommender):  # the shared scorer with no adapter: what is timed is scoring
        description = "scoring machinery only"
        shares_prefix = True  # no adapter at all: nothing row-specific but the tokens

        def build(self, split):  # noqa: D401 - nothing to build
            pass

        def stages(self):
            return []

    split = load_split(dataset, data_dir)
    rows = _whole_users(split.test, n_rows, seed)
    labels = rows["label"].to_numpy()
    warm = rows.head(min(len(rows), 8))  # untimed: kernels, allocator, thread pools
    dev = torch.device(device)
    default = pick_dtype(dev)

    def timed(fn) -> tuple[np.ndarray, float]:
        synchronize(dev)
        t0 = time.perf_counter()
        out = fn()
        synchronize(dev)
        return out, time.perf_counter() - t0

    entries: list[dict[str, Any]] = []
    plain: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="recbench-speed-") as work:
        for i, name in enumerate(dtypes):
            cfg = build_config(LLMRecommender.Config, {}, {"backbone": backbone, "eval_batch_size": harness_batch,
                                                           "dtype": name})
            ctx = RunContext(dataset=dataset, seed=seed, device=device, work_dir=Path(work), artifact_dir=Path(work),
                             split_fingerprint=split.fingerprint, run_name="scoring-speed", progress=False)
            m = ScoringOnly(cfg, ctx)
            m.prepare(split)
            m.model.eval()
            if i == 0:
                enc = m._encoded(rows, prompt)  # tokenised once; every path scores the same token ids
                prompts = [e.input_ids for e in enc]
                groups, _ = plan(enc, m.user_keys(rows), np.arange(len(rows)))
                ref = m if m.bb.dtype == default else ScoringOnly(
                    build_config(LLMRecommender.Config, {}, {"backbone": backbone}), ctx)
                if ref is not m:
                    ref.prepare(split)
                _plain_loop(ref.bb, prompts[:len(warm)], plain_batch)
                plain_scores, secs = timed(lambda ref=ref: _plain_loop(ref.bb, prompts, plain_batch))
                plain = {"batch": plain_batch, "dtype": str(ref.bb.dtype).replace("torch.", ""), "seconds": secs,
                         "prompts_per_s": len(rows) / secs, "auc": _auc(labels, plain_scores)}
                log.info("plain (%s): %d prompts in %.1fs", plain["dtype"], len(rows), secs)
                del ref
            m._score_rows(warm, prompt)
            scores, secs = timed(lambda m=m: m._score_rows(rows, prompt))
            diff = float(np.max(np.abs(scores - plain_scores)))
            exact = m.bb.dtype == default
            tol = 0.5 if dev.type == "cuda" else 1e-3  # bf16 on CUDA differs by padding side
            if exact and not diff < tol:
                raise RuntimeError(f"harness and plain loop disagree on the Yes logit by {diff:.4g} (> {tol})")
            entries.append({"dtype": str(m.bb.dtype).replace("torch.", ""), "batch": harness_batch, "seconds": secs,
                            "prompts_per_s": len(rows) / secs, "speedup": plain["seconds"] / secs,
                            "same_precision_as_plain": bool(exact), "max_abs_score_diff": diff,
                            "spearman_vs_plain": float(spearmanr(scores, plain_scores).statistic),
                            "auc": _auc(labels, scores)})
            log.info("harness (%s): %d prompts in %.1fs", entries[-1]["dtype"], len(rows), secs)
            del m
    from bench.runner import REPO

    lengths = [len(p) for p in prompts]
    return {"kind": "scoring_speed", "schema_version": records.SCHEMA_VERSION, "backbone": backbone,
            "device": device, "device_name": records.device_name(device), "dataset": dataset,
            "split_fingerprint": split.fingerprint, "prompt": prompt, "n_prompts": len(rows),
            "mean_tokens": float(np.mean(lengths)), "max_tokens": int(np.max(lengths)),
            "users": int(rows["user"].nunique()), "rows_sharing_a_prefix": int(sum(len(g.rows) for g in groups)),
            "mean_shared_tokens": float(np.mean([g.shared for g in groups])) if groups else 0.0,
            "plain": plain, "harness": entries,
            "versions": records.versions(), "git": records.git_state(REPO), "finished": records.now()}


def write(record: dict[str, Any], out_dir: Path) -> Path:
    return records.write_benchmark(record, out_dir, "scoring_speed")
