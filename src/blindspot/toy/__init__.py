"""The toy world: a benchmark with planted ground truth and toy VLMs trained on it."""
