import pytest

from skyllama.errors import BadRequest
from skyllama.modelfile import parse_modelfile


def test_full_modelfile() -> None:
    text = '''
# a comment
FROM llama3.2
PARAMETER temperature 0.5
PARAMETER stop "<|im_end|>"
parameter stop <|im_start|>
PARAMETER num_ctx 2048
TEMPLATE """{{ .System }}
{{ .Prompt }}"""
SYSTEM You are Mario.
MESSAGE user Hello there
MESSAGE assistant "Hi!"
LICENSE """MIT"""
'''
    req = parse_modelfile(text)
    assert req["from"] == "llama3.2"
    assert req["parameters"] == {"temperature": 0.5, "stop": ["<|im_end|>", "<|im_start|>"], "num_ctx": 2048}
    assert req["template"] == "{{ .System }}\n{{ .Prompt }}"
    assert req["system"] == "You are Mario."
    assert req["messages"] == [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi!"}]
    assert req["license"] == ["MIT"]


@pytest.mark.parametrize(
    "text",
    [
        "PARAMETER temperature 1",  # no FROM
        "FROM x\nBOGUS y",
        "FROM x\nPARAMETER nonsense 1",
        "FROM x\nPARAMETER num_ctx lots",
        'FROM x\nTEMPLATE """never closed',
        "FROM x\nPARAMETER temperature inf",
    ],
)
def test_bad_modelfiles(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_modelfile(text)
