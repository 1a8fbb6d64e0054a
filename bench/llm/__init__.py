"""The LLM machinery every LLM recommender shares: backbone loading, prompts, the Yes-logit
scorer and the trainer. Imported lazily (only by LLM methods); needs torch, transformers and
peft but never RecBole, so it runs on a GPU machine without it."""
