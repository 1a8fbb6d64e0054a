"""GraphLoRA: graph-structured collaborative signal injected inside the LoRA bottleneck.

``config`` (the one dataclass), ``encoders`` (GNNs, written with torch-geometric, over each row's
own subgraph of the train-positive graph), ``injection`` (hooks on peft's LoRA layers of ONE
transformer layer), ``model`` (the registered method and its variants)."""
