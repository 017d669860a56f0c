"""skyllama: an Ollama-compatible model server in Python, embedded or serverless on AWS."""

__version__ = "0.1.0"

# The default version Ollama clients see at /api/version (SKYLLAMA_API_VERSION): the Ollama
# release whose API skyllama follows (fields up to v0.32's; Ollama's source read in August 2026).
OLLAMA_COMPAT_VERSION = "0.32.15"

__all__ = ["__version__", "OLLAMA_COMPAT_VERSION"]
