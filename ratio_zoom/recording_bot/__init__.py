"""Recording bots behind a provider-neutral interface, with one real implementation (Recall.ai)."""
