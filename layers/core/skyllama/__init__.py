"""skyllama: an Ollama-compatible model server in Python, embedded or serverless on AWS."""

__version__ = "0.1.0"

# The version Ollama clients see at /api/version: the Ollama API level skyllama speaks.
OLLAMA_COMPAT_VERSION = "0.6.3"

__all__ = ["__version__", "OLLAMA_COMPAT_VERSION"]
