"""A trained LLM recommender's state on disk, and the same method rebuilt from it without training.

``bench run`` writes it into the run's artifact directory (in the cache, never the repository) as
``trained_state/`` and names that folder in the record's ``artifacts["trained_state"]``;
``python -m bench score`` (``bench.scoring``) reads it back. The folder's format (manifest, atomic
replacement, size limit) is every method's (``bench.trained_state``); an LLM method's holds:

* ``adapter/``: the peft LoRA adapter as ``PeftModel.save_pretrained`` writes it
  (``adapter_config.json`` + ``adapter_model.safetensors``), when the model is peft-wrapped;
* ``modules.safetensors``: ``method.modules.state_dict()``, i.e. every method-owned parameter
  (trained or frozen: projectors, ID / CF tables, GNN, soft prompts, hash layers, generators) and
  persistent buffer, by module path; except the tensors training left exactly as the seeded
  build made them (their SHA-256 is kept instead, and the rebuilt ones must match it);
* ``model_extra.safetensors``: trained parameters of the language model outside the peft
  adapter, by name (none of today's methods has any; written only when there are);
* ``extra.npz``: the method's ``extra_state()`` arrays (state that is neither a parameter nor a
  buffer, e.g. BinLLM's binary codes);
* ``state.json``: the manifest: the method, its effective config (after per-dataset settings
  and budget matching), the prompt it scores with, the split fingerprint, the backbone, and a
  SHA-256 of every non-persistent buffer of ``method.modules``.

Restoring builds the method as training did (``prepare``: the backbone, the adapters, the graph
from the split's train rows, the frozen CF tables from the CF run's cached embeddings) with
``method.restoring`` set, so ``build`` fits nothing of its own, then loads the files over it.
Non-persistent buffers (frozen CF tables a method re-reads from its CF run) are not copied: the
rebuilt ones must hash to what the run used, or loading stops. The frozen backbone is not
copied either: it is reloaded by name, and a sample of its input embeddings must hash the same.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.trained_state import (DEFAULT_MAX_MB, DIRNAME, ENV, FORMAT, MANIFEST, enabled,  # noqa: F401 (re-exported)
                                 max_bytes, read_manifest, size, write_state)

ADAPTER = "adapter"
MODULES = "modules.safetensors"
MODEL_EXTRA = "model_extra.safetensors"
EXTRA = "extra.npz"


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{flat.dtype}:{tuple(t.shape)}:".encode())
    h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def backbone_digest(model: Any, cap: int = 1_000_000) -> str:
    """SHA-256 of a strided sample (at most ``cap`` values) of the input embeddings rounded to
    bfloat16, so the same checkpoint hashes alike loaded in float32 (CPU) or bfloat16 (CUDA)."""
    w = model.get_input_embeddings().weight.detach().reshape(-1)
    sample = w[:: max(1, w.numel() // cap)].to(torch.bfloat16).float().cpu()
    return hashlib.sha256(f"{tuple(model.get_input_embeddings().weight.shape)}:".encode()
                          + sample.numpy().tobytes()).hexdigest()


def digests(modules: torch.nn.Module) -> dict[str, str] | None:
    """``tensor_digest`` of every entry of ``modules.state_dict()`` (None on the meta device)."""
    state = modules.state_dict()
    if any(t.device.type == "meta" for t in state.values()):
        return None
    return {k: tensor_digest(v) for k, v in state.items()}


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency of every LLM method
        return False
    return isinstance(model, PeftModel)


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clones: safetensors refuses tensors sharing storage
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def _non_persistent(modules: torch.nn.Module) -> dict[str, torch.Tensor]:
    kept = set(modules.state_dict())
    return {n: b for n, b in modules.named_buffers() if n not in kept}


def _model_extra(method: Any) -> dict[str, torch.Tensor]:
    """Trained parameters of the language model that the peft adapter does not hold."""
    trained = method.trained
    in_adapter = _is_peft(method.model)
    return {n: p for n, p in method.model.named_parameters()
            if id(p) in trained and not (in_adapter and "lora_" in n)}


def _bytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def save(method: Any, directory: Path) -> Path | None:
    """Write ``method``'s trained state to ``directory`` (replacing an earlier one atomically:
    a reader sees the old folder or the new one, never half of one). Returns ``directory``, or
    None (a warning logged) where the state is larger than ``RECBENCH_SAVE_STATE`` allows."""
    from safetensors.torch import save_file

    from bench.config import config_dict

    directory = Path(directory)
    limit = max_bytes()
    if limit <= 0:
        shutil.rmtree(directory, ignore_errors=True)  # an earlier run's state is not this run's
        return None
    state = method.modules.state_dict()
    # tensors training left exactly as the (seeded) build made them are rebuilt, not copied
    # (e.g. a frozen MF table, zero-gradient biases)
    built = method.as_built or {}
    as_built = {k: built[k] for k, v in state.items() if k in built and tensor_digest(v) == built[k]}
    kept = {k: v for k, v in state.items() if k not in as_built}
    extra_params = _model_extra(method)
    extra = {k: np.asarray(v) for k, v in (method.extra_state() or {}).items()}
    if _is_peft(method.model):
        from peft.utils import get_peft_model_state_dict

        adapter_bytes = _bytes(get_peft_model_state_dict(method.model))
    else:
        adapter_bytes = 0
    total = adapter_bytes + _bytes(kept) + _bytes(extra_params) + sum(a.nbytes for a in extra.values())
    if total > limit:
        import logging

        logging.getLogger("bench").warning(
            "%s: its trained state (%.0f MB) is not saved: over the %s limit of %.0f MB (set %s=always to keep it)",
            method.ctx.run_name or type(method).__name__, total / 1e6, ENV, limit / 1e6, ENV)
        shutil.rmtree(directory, ignore_errors=True)
        return None
    def write(tmp: Path) -> dict[str, Any]:
        if _is_peft(method.model):
            import warnings

            with warnings.catch_warnings():  # peft warns when it cannot find the base model's config online
                warnings.simplefilter("ignore")
                method.model.save_pretrained(str(tmp / ADAPTER), save_embedding_layers=False)
        if kept:
            save_file(_cpu(kept), str(tmp / MODULES))
        if extra_params:
            save_file(_cpu(extra_params), str(tmp / MODEL_EXTRA))
        if extra:
            np.savez(tmp / EXTRA, **extra)
        return {
            "method": f"{type(method).__module__}:{type(method).__qualname__}",
            "config": config_dict(method.config),
            "prompt": method.prompt,
            "split_fingerprint": method.ctx.split_fingerprint,
            "seed": method.ctx.seed,
            "backbone": {"name": method.config.backbone, "dtype": str(method.bb.dtype).replace("torch.", ""),
                         "device": str(method.bb.device), "embeddings_sha256": backbone_digest(method.model)},
            "rebuilt_buffers": {n: tensor_digest(b) for n, b in _non_persistent(method.modules).items()},
            "rebuilt_as_built": as_built,
        }

    return write_state(directory, write)


def load(method: Any, directory: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load the state in ``directory`` over ``method``, prepared (``restoring`` set) but not
    trained; BenchError where the rebuilt method does not match what was saved."""
    from safetensors.torch import load_file

    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    where = f"saved state {directory}"
    if manifest["split_fingerprint"] != method.ctx.split_fingerprint:
        raise BenchError(f"{where} was trained on split {manifest['split_fingerprint']}, not on this one "
                         f"({method.ctx.split_fingerprint})", "rebuild the run's split (same dataset, same transforms)")
    want = manifest.get("backbone", {}).get("embeddings_sha256")
    if want and want != backbone_digest(method.model):
        raise BenchError(f"{where}: the backbone {method.config.backbone!r} loaded here is not the one the run "
                         "trained on (its input embeddings differ)",
                         "load the same checkpoint (a local path or cached name must point at the same files)")
    dev = method.bb.device
    adapter = directory / ADAPTER / "adapter_model.safetensors"
    if adapter.is_file():
        if not _is_peft(method.model):
            raise BenchError(f"{where} holds a LoRA adapter, and the rebuilt {type(method).__name__} has none",
                             "score with the recbench version that ran it")
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

        tensors = load_file(str(adapter), device=str(dev))
        expected = set(get_peft_model_state_dict(method.model))
        if set(tensors) != expected:
            raise BenchError(f"{where}: its adapter holds {sorted(set(tensors) ^ expected)[:5]} where the rebuilt "
                             "model's adapter differs", "score with the recbench version that ran it")
        set_peft_model_state_dict(method.model, tensors)
    tensors = load_file(str(directory / MODULES), device=str(dev)) if (directory / MODULES).is_file() else {}
    as_built = manifest.get("rebuilt_as_built", {})
    expected = set(method.modules.state_dict())
    if set(tensors) | set(as_built) != expected:
        odd = sorted((set(tensors) | set(as_built)) ^ expected)
        raise BenchError(f"{where}: the method's parts do not fit the rebuilt ones ({', '.join(odd[:5])}"
                         f"{' ...' if len(odd) > 5 else ''})", "score with the recbench version that ran it")
    current = method.modules.state_dict()
    for name, digest in as_built.items():  # not copied: the build must have made them again
        if tensor_digest(current[name]) != digest:
            raise BenchError(f"{where}: {name} was left as built by training, so not copied, and the build here "
                             "made another one", "score with the recbench and torch versions that ran it")
    if tensors:
        try:
            method.modules.load_state_dict(tensors, strict=False)
        except RuntimeError as e:
            raise BenchError(f"{where}: the method's parts do not fit the rebuilt ones ({str(e).splitlines()[0]})",
                             "score with the recbench version that ran it") from None
    if (directory / MODEL_EXTRA).is_file():
        params = dict(method.model.named_parameters())
        with torch.no_grad():
            for name, value in load_file(str(directory / MODEL_EXTRA), device=str(dev)).items():
                if name not in params or params[name].shape != value.shape:
                    raise BenchError(f"{where}: the rebuilt model has no parameter {name} of shape "
                                     f"{tuple(value.shape)}", "score with the recbench version that ran it")
                params[name].copy_(value)
    if (directory / EXTRA).is_file():
        with np.load(directory / EXTRA, allow_pickle=False) as arrays:
            method.load_extra_state({k: arrays[k] for k in arrays.files})
    rebuilt = {n: tensor_digest(b) for n, b in _non_persistent(method.modules).items()}
    for name, digest in manifest.get("rebuilt_buffers", {}).items():
        if rebuilt.get(name) != digest:
            source = getattr(method, "cf_source", None)
            raise BenchError(f"{where}: the frozen input {name!r} rebuilt here differs from the one the run used"
                             + (f" (read from {source})" if source else ""),
                             "the CF run it depends on was redone or its cache differs: score where the run ran, "
                             "or rerun the LLM run")
    method.prompt = manifest["prompt"]
    return manifest
