"""Vision-language models: a registry of family adapters, loading, prompts, batched inference, tiny models."""
