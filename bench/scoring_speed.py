"""``python -m bench scoring-speed``: prompts scored per second by the harness's scorer against a
plain Hugging Face loop, same prompts, same backbone, one process, one device.

The plain loop is what the published repos do: corpus order, right padding, batch 16, the full
vocabulary projection at every position, then the Yes logit read at each row's last real token.
The harness path is every LLM recommender's ``Scorer`` (``bench.llm.scorer``: length-bucketed
left-padded batches, the Yes row of the vocabulary projection at the last position only,
``inference_mode``, and a user's shared prompt prefix run once as a KV cache), reached through a
recommender with no adapters, so nothing but the scoring machinery is timed. At the same precision both must give
the same scores (checked, and the largest difference is recorded). The plain loop runs at the
device's default precision (the anchor every speed-up is against) and at each other precision
the harness is asked for, so a reduced-precision speed-up can be told apart from the harness's.

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
from bench.errors import BenchError

log = logging.getLogger("bench")
KIND = "scoring_speed"
TITLE = "Scoring speed"  # the report's heading of a record, before its file's stem
TEX = None  # the stem of its LaTeX table beside the report (None: Markdown only)


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


def token_positions(prompts: list[list[int]], groups: list, plain_batch: int) -> dict[str, int]:
    """Token positions each path runs: the plain loop's padded batches, the harness's prompts
    without padding (shared prefixes once), and a lower bound for any prefix sharing (every
    distinct prefix of the prompts once, as a perfect trie would run them)."""
    plain = sum(max(map(len, prompts[i:i + plain_batch])) * len(prompts[i:i + plain_batch])
                for i in range(0, len(prompts), plain_batch))
    harness = sum(map(len, prompts)) - sum(g.shared * (len(g.rows) - 1) for g in groups)
    distinct = set()
    for p in prompts:
        h = 0
        for t in p:  # a chain of hashes names each prefix in O(1) per token
            h = hash((h, t))
            distinct.add(h)
    return {"plain_padded": int(plain), "harness_unpadded": int(harness), "prefix_trie_bound": len(distinct)}


def measure(backbone: str, device: str, dataset: str, data_dir: str | None, n_rows: int,
            plain_batch: int = 16, harness_batch: int = 64, seed: int = 0, prompt: str = "id",
            dtypes: tuple[str, ...] = ("auto",)) -> dict[str, Any]:
    """The payload of a scoring-speed record: the plain loop and the harness at each precision: the device's default (the anchor) and
    each of ``dtypes`` (``auto`` is the default; ``bfloat16`` on a CPU trades exactness for
    speed, so its scores are compared with the anchor's, not required to match them)."""
    import gc

    import torch
    from scipy.stats import spearmanr

    from bench.config import build_config
    from bench.data import load_split
    from bench.llm.backbone import dtype_name, pick_dtype, synchronize
    from bench.llm.prefix import plan
    from bench.llm.recommender import LLMRecommender
    from bench.method import RunContext
    from bench.metrics import auc  # one-class rows: NaN, written as null

    class ScoringOnly(LLMRecommender):  # the shared scorer with no adapter: what is timed is scoring
        description = "scoring machinery only"
        shares_prefix = True  # no adapter at all: nothing row-specific but the tokens

        def build(self, split):  # noqa: D401 - nothing to build
            pass

        def stages(self):
            return []

    if not dtypes:
        raise BenchError("no precision to measure the harness at", "pass --dtypes auto (or float32, bfloat16)")
    split = load_split(dataset, data_dir)
    rows = _whole_users(split.test, n_rows, seed)
    labels = rows["label"].to_numpy()
    warm = rows.head(min(len(rows), 8))  # untimed: kernels, allocator, thread pools
    dev = torch.device(device)
    default = dtype_name(pick_dtype(dev))
    wanted = [dtype_name(pick_dtype(dev, d)) for d in dtypes]
    order = [default] + [d for d in dict.fromkeys(wanted) if d != default]  # the anchor first

    def timed(fn) -> tuple[np.ndarray, float]:
        synchronize(dev)
        t0 = time.perf_counter()
        out = fn()
        synchronize(dev)
        return out, time.perf_counter() - t0

    plains: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    anchor_scores = None
    with tempfile.TemporaryDirectory(prefix="recbench-speed-") as work:
        ctx = RunContext(dataset=dataset, seed=seed, device=device, work_dir=Path(work), artifact_dir=Path(work),
                         split_fingerprint=split.fingerprint, run_name="scoring-speed", progress=False)
        for name in order:
            cfg = build_config(LLMRecommender.Config, {}, {"backbone": backbone, "eval_batch_size": harness_batch,
                                                           "dtype": name})
            m = ScoringOnly(cfg, ctx)
            m.prepare(split)
            m.model.eval()
            if anchor_scores is None:
                enc = m.scorer.encode(rows, prompt)  # tokenised once; every path scores the same token ids
                prompts = [e.input_ids for e in enc]
                groups, _ = plan(enc, m.user_keys(rows), np.arange(len(rows)))
            _plain_loop(m.bb, prompts[:len(warm)], plain_batch)
            plain_scores, secs = timed(lambda m=m: _plain_loop(m.bb, prompts, plain_batch))
            if anchor_scores is None:
                anchor_scores = plain_scores
            plains[name] = {"batch": plain_batch, "dtype": name, "seconds": secs, "prompts_per_s": len(rows) / secs,
                            "auc": auc(labels, plain_scores), "score_sd": float(np.std(plain_scores)),
                            "max_abs_score_diff": float(np.max(np.abs(plain_scores - anchor_scores)))}
            log.info("plain (%s): %d prompts in %.1fs", name, len(rows), secs)
            if name in wanted:
                m.scorer.score(warm, prompt)
                scores, secs = timed(lambda m=m: m.scorer.score(rows, prompt))
                same = float(np.max(np.abs(scores - plain_scores)))
                tol = 0.5 if dev.type == "cuda" or name != "float32" else 1e-3  # bf16: padding side moves it
                if not same < tol:
                    raise RuntimeError(f"harness and plain loop ({name}) disagree on the Yes logit by {same:.4g} (> {tol})")
                entries.append({"dtype": name, "batch": harness_batch, "seconds": secs,
                                "prompts_per_s": len(rows) / secs, "speedup": plains[default]["seconds"] / secs,
                                "speedup_same_precision": plains[name]["seconds"] / secs,
                                "same_precision_as_plain": name == default, "max_abs_score_diff_same_precision": same,
                                "max_abs_score_diff": float(np.max(np.abs(scores - anchor_scores))),
                                "spearman_vs_plain": float(spearmanr(scores, anchor_scores).statistic),
                                "auc": auc(labels, scores)})
                log.info("harness (%s): %d prompts in %.1fs", name, len(rows), secs)
            del m
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    lengths = [len(p) for p in prompts]
    return {"backbone": backbone, "device": device, "dataset": dataset,
            "split_fingerprint": split.fingerprint, "prompt": prompt, "n_prompts": len(rows),
            "mean_tokens": float(np.mean(lengths)), "max_tokens": int(np.max(lengths)),
            "users": int(rows["user"].nunique()), "rows_sharing_a_prefix": int(sum(len(g.rows) for g in groups)),
            "mean_shared_tokens": float(np.mean([g.shared for g in groups])) if groups else 0.0,
            "token_positions": token_positions(prompts, groups, plain_batch),
            "default_dtype": default, "plain": plains[default], "plain_by_dtype": plains, "harness": entries}


def write(record: dict[str, Any], out_dir: Path) -> Path:
    # a record without the default precision's harness gets its own file beside the default one
    default = record.get("default_dtype")
    tag = "" if any(e["dtype"] == default for e in record["harness"]) else "-".join(e["dtype"] for e in record["harness"])
    return records.write_benchmark(record, out_dir, KIND, tag=tag)


def table(rec: dict[str, Any], layout: Any = None, tex: bool = False) -> tuple[list[str], list[list[str]], list[str]]:
    """One scoring-speed record: the harness scorer against a plain Hugging Face loop, each at
    every precision measured; speed-ups against the plain loop at the device's default precision
    and against the plain loop at the same precision."""
    header = ["Path", "Precision", "Batch", "Prompts/s", "Seconds", "Speed-up", "Same-precision speed-up",
              "Max abs score diff", "Spearman"]
    anchor = rec["plain"]
    plains = rec.get("plain_by_dtype") or {anchor.get("dtype", ""): anchor}
    body = [["plain HF loop", name, str(p["batch"]), f"{p['prompts_per_s']:.2f}", f"{p['seconds']:.1f}",
             f"x{anchor['seconds'] / p['seconds']:.2f}", "x1.00", f"{p.get('max_abs_score_diff', 0.0):.2g}", ""]
            for name, p in plains.items()]
    harness = rec["harness"] if isinstance(rec["harness"], list) else [  # records before precisions were listed
        {**rec["harness"], "speedup": rec["speedup"], "max_abs_score_diff": rec["max_abs_score_diff"]}]
    body += [["harness scorer", e.get("dtype", ""), str(e["batch"]), f"{e['prompts_per_s']:.2f}", f"{e['seconds']:.1f}",
              f"x{e['speedup']:.2f}", f"x{e['speedup_same_precision']:.2f}" if "speedup_same_precision" in e else "",
              f"{e['max_abs_score_diff']:.2g}", f"{e['spearman_vs_plain']:.4f}" if "spearman_vs_plain" in e else ""]
             for e in harness]
    shared = rec.get("rows_sharing_a_prefix")
    users = "" if shared is None else f" of {rec['users']} whole users, {shared} of them sharing a cached prefix"
    prompt = f"{rec['prompt']} prompt, " if "prompt" in rec else ""
    notes = [f"Backbone {rec['backbone']} on {rec['device_name']}: {rec['n_prompts']} {rec['dataset']} test "
             f"prompts ({prompt}mean {rec['mean_tokens']:.0f} tokens){users}. Speed-ups, score differences and rank "
             f"correlation are against the plain loop in {anchor.get('dtype', 'its default precision')}."]
    pos = rec.get("token_positions")
    if pos:
        notes.append(f"Token positions run: plain loop {pos['plain_padded']:,} (padded), harness "
                     f"{pos['harness_unpadded']:,} (before padding); any prefix sharing runs at least "
                     f"{pos['prefix_trie_bound']:,}.")
    return header, body, notes
