"""Hugging Face safetensors model folders to GGUF, for ``/api/create`` with ``files``."""

from skyllama.convert.convert import (
    ConvertResult,
    check_model_dir,
    convert_model_dir,
    supported_architectures,
    validate_file_name,
)
from skyllama.convert.safetensors_reader import Checkpoint, SafetensorsFile, open_checkpoint

__all__ = [
    "Checkpoint",
    "ConvertResult",
    "check_model_dir",
    "SafetensorsFile",
    "convert_model_dir",
    "open_checkpoint",
    "supported_architectures",
    "validate_file_name",
]
