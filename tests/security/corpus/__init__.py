"""Crafted model files for the security tests, built by code (no committed binaries)."""
