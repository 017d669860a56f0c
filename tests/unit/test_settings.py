from pathlib import Path

import pytest

from skyllama.keep_alive import KeepAlive
from skyllama.settings import Settings, SettingsError, parse_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("http", "127.0.0.1", 11434)),
        ("0.0.0.0", ("http", "0.0.0.0", 11434)),
        ("example.com:8080", ("http", "example.com", 8080)),
        ("http://example.com", ("http", "example.com", 80)),
        ("https://example.com", ("https", "example.com", 443)),
        ("http://10.0.0.1:1234", ("http", "10.0.0.1", 1234)),
        (":8080", ("http", "0.0.0.0", 8080)),
        ("[::1]:9000", ("http", "::1", 9000)),
    ],
)
def test_parse_host(value: str, expected: tuple[str, str, int]) -> None:
    addr = parse_host(value)
    assert (addr.scheme, addr.host, addr.port) == expected


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.address.url == "http://127.0.0.1:11434" and s.address.is_loopback
    assert s.keep_alive == KeepAlive(300) and s.effective_max_loaded_models == 3 and s.effective_num_parallel == 1
    assert s.max_queue == 512
    # never Ollama's own folder unless asked
    assert s.models == Path.home() / ".skyllama" / "models"


def test_ollama_names_are_read() -> None:
    s = Settings.from_env({
        "OLLAMA_HOST": "0.0.0.0:9999", "OLLAMA_MODELS": "/tmp/m", "OLLAMA_KEEP_ALIVE": "-1",
        "OLLAMA_MAX_LOADED_MODELS": "2", "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_QUEUE": "7",
        "OLLAMA_ORIGINS": "http://a.example", "OLLAMA_CONTEXT_LENGTH": "2048",
    })
    assert s.address.port == 9999 and not s.address.is_loopback
    assert s.models == Path("/tmp/m") and s.keep_alive.is_forever
    assert (s.max_loaded_models, s.num_parallel, s.max_queue) == (2, 4, 7)
    assert s.origins == "http://a.example" and s.context_length == 2048
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "1h30m"}).keep_alive == KeepAlive(5400)
    assert Settings.from_env({"OLLAMA_KEEP_ALIVE": "60"}).keep_alive == KeepAlive(60)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("OLLAMA_HOST", "x:99999"), ("OLLAMA_HOST", "ftp://x"), ("OLLAMA_HOST", "x:abc"),
        ("OLLAMA_KEEP_ALIVE", "5 minutes"), ("OLLAMA_MAX_LOADED_MODELS", "-1"),
        ("OLLAMA_NUM_PARALLEL", "many"), ("OLLAMA_MAX_QUEUE", "1.5"), ("SKYLLAMA_BACKEND", "gcp"),
        ("OLLAMA_KV_CACHE_TYPE", "f64"), ("SKYLLAMA_API_VERSION", "latest"), ("SKYLLAMA_API_VERSION", "0.32"),
    ],
)
def test_bad_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({var: value})
    assert var in str(info.value)


def test_describe_lists_every_variable() -> None:
    names = [row[0] for row in Settings.describe()]
    for var in ("OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_KEEP_ALIVE", "OLLAMA_MAX_LOADED_MODELS",
                "OLLAMA_NUM_PARALLEL", "OLLAMA_MAX_QUEUE", "OLLAMA_ORIGINS"):
        assert var in names
