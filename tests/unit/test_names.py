import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyllama.errors import InvalidName
from skyllama.names import ModelName


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("llama3", ("registry.ollama.ai", "library", "llama3", "latest")),
        ("llama3.2:1b", ("registry.ollama.ai", "library", "llama3.2", "1b")),
        ("me/model:v1", ("registry.ollama.ai", "me", "model", "v1")),
        ("hf.co/user/repo:Q4_K_M", ("hf.co", "user", "repo", "Q4_K_M")),
        ("localhost:5000/ns/m:t", ("localhost:5000", "ns", "m", "t")),
        ("https://example.com/ns/m", ("example.com", "ns", "m", "latest")),
        ("Foo:Latest", ("registry.ollama.ai", "library", "Foo", "Latest")),
        ("m@sha256:" + "a" * 64, ("registry.ollama.ai", "library", "m", "latest")),
    ],
)
def test_parse_fills_defaults(text: str, parts: tuple[str, str, str, str]) -> None:
    assert ModelName.parse(text).path_parts() == parts


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "../../etc/passwd", "a/b/c/d/e", "..", "./x", "x/../y", "/abs", "-dash", "m:",
        "ns.dot/m", "m:t:t2/x", "a" * 81, "m:" + "t" * 81, "h" * 351 + "/n/m", "m\x00", "mé", "m/",
        "a b", "m:ta/g", "m\\n",
    ],
)
def test_invalid_names(text: str) -> None:
    with pytest.raises(InvalidName):
        ModelName.parse(text)


def test_case_insensitive_but_preserving() -> None:
    a, b = ModelName.parse("Foo:Latest"), ModelName.parse("foo:latest")
    assert a.same_as(b) and a != b
    assert a.display() == "Foo:Latest"


def test_display_drops_defaults() -> None:
    assert ModelName.parse("llama3").display() == "llama3:latest"
    assert ModelName.parse("me/m:t").display() == "me/m:t"
    assert ModelName.parse("hf.co/u/r:q").display() == "hf.co/u/r:q"


def test_storage_key_is_ollama_layout() -> None:
    assert ModelName.parse("me/m:t").storage_key() == "manifests/registry.ollama.ai/me/m/t"


@given(st.text(max_size=120))
def test_any_text_parses_or_raises_invalid_name(text: str) -> None:
    try:
        name = ModelName.parse(text)
    except InvalidName:
        return
    # A name that parses is safe as path segments, and round-trips through its string form.
    for part in name.path_parts():
        assert part not in ("", ".", "..") and "/" not in part and "\\" not in part
    assert ModelName.parse(str(name)) == name


@given(st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,20}", fullmatch=True),
       st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,20}", fullmatch=True))
def test_round_trip_of_valid_names(model: str, tag: str) -> None:
    name = ModelName.parse(f"{model}:{tag}")
    assert (name.model, name.tag) == (model, tag)
    assert ModelName.parse(name.display()) == name
