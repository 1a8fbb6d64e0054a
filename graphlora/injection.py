"""Injection of the graph signal into peft's LoRA layers of ONE transformer layer.

For the chosen layer's target modules (q and v), a hook on each peft ``lora_A`` sub-module
changes what reaches ``lora_B`` at the collaborative token positions only:

- ``middle``: ``z = alpha_f * A x + beta_f * g_node``, then peft applies ``B z * scaling``
  (LoRA's alpha/r scaling is kept: the published code drops it, a defect not copied);
- ``pre``: ``A(x + beta_f * g_node)``.

``g_node`` is added as it is when it already has the size of what it is added to (the published
form: the encoder ends at r), or through a P per target module (``project=True``).

Everywhere else (other positions, other layers) it is plain peft LoRA. The hooks work on any
Hugging Face causal LM whose decoder blocks are named ``...layers.<i>...``.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

_LAYER = re.compile(r"\.layers\.(\d+)\.")


def lora_modules_of_layer(model: nn.Module, layer: int, targets: tuple[str, ...]) -> dict[str, nn.Module]:
    from peft.tuners.lora import LoraLayer

    found = {}
    for name, mod in model.named_modules():
        m = _LAYER.search(name)
        if isinstance(mod, LoraLayer) and m and int(m.group(1)) == layer and name.split(".")[-1] in targets:
            found[name.split(".")[-1]] = mod
    if not found:
        raise ValueError(f"no LoRA modules {targets} in layer {layer}")
    return found


class SlotInjector(nn.Module):
    """Holds P (one per target module) and the current batch's (row, col, g) for the hooks."""

    def __init__(self, lora_mods: dict[str, Any], g_dim: int, mode: str, alpha_f: float, beta_f: float,
                 project: bool = True) -> None:
        super().__init__()
        self.mode, self.alpha_f, self.beta_f = mode, alpha_f, beta_f
        adapter = "default"
        self.proj = nn.ModuleDict()
        self._handles = []
        for name, mod in lora_mods.items():
            a = mod.lora_A[adapter]
            out_dim = a.out_features if mode == "middle" else a.in_features
            if project:
                self.proj[name] = nn.Linear(g_dim, out_dim, bias=False)
            elif g_dim != out_dim:
                raise ValueError(f"a graph signal of size {g_dim} cannot be added unprojected to {name}'s {out_dim}")
            if mode == "middle":
                self._handles.append(a.register_forward_hook(self._middle_hook(name)))
            else:
                self._handles.append(a.register_forward_pre_hook(self._pre_hook(name)))
        self.clear()

    def set(self, rows: torch.Tensor, cols: torch.Tensor, g: torch.Tensor) -> None:
        """This batch's slots: token (rows[s], cols[s]) receives g[s]."""
        self.rows, self.cols, self.g = rows, cols, g

    def clear(self) -> None:
        self.rows = self.cols = self.g = None

    def _delta(self, name: str, like: torch.Tensor) -> torch.Tensor:
        g = self.g
        if name in self.proj:
            g = self.proj[name](g.to(self.proj[name].weight.dtype))
        return (self.beta_f * g).to(like.dtype)

    def _middle_hook(self, name: str):
        def hook(module, inputs, out):
            if self.g is None:
                return out
            out = out.clone()
            r, c = self.rows, self.cols
            out[r, c] = self.alpha_f * out[r, c] + self._delta(name, out)
            return out

        return hook

    def _pre_hook(self, name: str):
        def hook(module, inputs):
            if self.g is None:
                return None
            x = inputs[0].clone()
            r, c = self.rows, self.cols
            x[r, c] = x[r, c] + self._delta(name, x)
            return (x,) + tuple(inputs[1:])

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
