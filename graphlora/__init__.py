"""GraphLoRA: graph-structured collaborative signal injected inside the LoRA bottleneck.

``config`` (the one dataclass), ``encoders`` (GNNs over the batch's 1-hop subgraph, written
with torch-geometric), ``injection`` (hooks on peft's LoRA layers of ONE transformer layer),
``model`` (the registered method)."""
