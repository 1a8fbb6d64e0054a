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
    with torch.no_grad(), autocast(bb.device):
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


def measure(backbone: str, device: str, dataset: str, data_dir: str | None, n_rows: int,
            plain_batch: int = 16, harness_batch: int = 64, seed: int = 0) -> dict[str, Any]:
    from bench.config import build_config
    from bench.data import load_split
    from bench.llm.backbone import synchronize
    from bench.llm.recommender import LLMRecommender
    from bench.method import RunContext

    class ScoringOnly(LLMRecommender):  # the shared scorer with no adapter: what is timed is scoring
        description = "scoring machinery only"
        shares_prefix = True  # no adapter at all: nothing row-specific but the tokens

        def build(self, split):  # noqa: D401 - nothing to build
            pass

        def stages(self):
            return []

    split = load_split(dataset, data_dir)
    rows = _whole_users(split.test, n_rows, seed)
    cfg = build_config(LLMRecommender.Config, {}, {"backbone": backbone, "eval_batch_size": harness_batch})
    with tempfile.TemporaryDirectory(prefix="recbench-speed-") as work:
        ctx = RunContext(dataset=dataset, seed=seed, device=device, work_dir=Path(work), artifact_dir=Path(work),
                         split_fingerprint=split.fingerprint, run_name="scoring-speed", progress=False)
        m = ScoringOnly(cfg, ctx)
        m.prepare(split)
        m.model.eval()
        enc = m._encoded(rows, "text")  # tokenised once; both paths score the same token ids
        prompts = [e.input_ids for e in enc]
        from bench.llm.prefix import plan

        groups, _ = plan(enc, m.user_keys(rows), np.arange(len(rows)))
        timings: dict[str, float] = {}
        scores: dict[str, np.ndarray] = {}
        warm = rows.head(min(len(rows), 8))  # untimed: kernels, allocator, thread pools
        paths = {"plain": (lambda: _plain_loop(m.bb, prompts[:len(warm)], plain_batch),
                           lambda: _plain_loop(m.bb, prompts, plain_batch)),
                 "harness": (lambda: m._score_rows(warm, "text"), lambda: m._score_rows(rows, "text"))}
        for name, (warm_up, timed) in paths.items():
            warm_up()
            synchronize(m.bb.device)
            t0 = time.perf_counter()
            scores[name] = timed()
            synchronize(m.bb.device)
            timings[name] = time.perf_counter() - t0
            log.info("%s: %d prompts in %.1fs", name, len(rows), timings[name])
    diff = float(np.max(np.abs(scores["plain"] - scores["harness"])))
    tol = 0.5 if device.startswith("cuda") else 1e-3  # bf16 on CUDA differs by padding side
    if not diff < tol:
        raise RuntimeError(f"harness and plain loop disagree on the Yes logit by {diff:.4g} (> {tol})")
    from bench.runner import REPO

    lengths = [len(p) for p in prompts]
    return {"kind": "scoring_speed", "schema_version": records.SCHEMA_VERSION, "backbone": backbone,
            "device": device, "device_name": records.device_name(device), "dataset": dataset,
            "split_fingerprint": split.fingerprint, "n_prompts": len(rows),
            "mean_tokens": float(np.mean(lengths)), "max_tokens": int(np.max(lengths)),
            "users": int(rows["user"].nunique()), "rows_sharing_a_prefix": int(sum(len(g.rows) for g in groups)),
            "mean_shared_tokens": float(np.mean([g.shared for g in groups])) if groups else 0.0,
            "plain": {"batch": plain_batch, "seconds": timings["plain"], "prompts_per_s": len(rows) / timings["plain"]},
            "harness": {"batch": harness_batch, "seconds": timings["harness"],
                        "prompts_per_s": len(rows) / timings["harness"]},
            "speedup": timings["plain"] / timings["harness"], "max_abs_score_diff": diff,
            "versions": records.versions(), "git": records.git_state(REPO), "finished": records.now()}


def write(record: dict[str, Any], out_dir: Path) -> Path:
    return records.write_benchmark(record, out_dir, "scoring_speed")
