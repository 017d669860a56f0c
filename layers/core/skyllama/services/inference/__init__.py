"""Inference: generate, chat and embed as typed commands and events, the scheduler, batching, cancel."""
