"""API keys, ownership of models and blobs, usage metering, quotas and per-key concurrency."""
