"""TALLRec as the CoLLM family re-implements it (Table 3): the text prompt, LoRA r=8 / alpha=16 /
dropout 0.05 on q and v, BCE on the " Yes" logit. (The original repo's causal-LM loss on an
Alpaca template is a different protocol, not used for Table 3.)"""
from __future__ import annotations

from bench.data.schema import Split
from bench.llm.recommender import LLMConfig, LLMRecommender, Stage


class TALLRec(LLMRecommender):
    Config = LLMConfig
    description = "TALLRec: text prompt + LoRA (q, v)"
    shares_prefix = True  # static adapters; slots filled per user / item

    def build(self, split: Split) -> None:
        self.model = self.lora(self.model)

    def stages(self) -> list[Stage]:
        return [Stage("lora", "text", self.lora_parameters(), self.config.train_spec())]
