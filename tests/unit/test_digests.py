import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyllama.digests import Digest
from skyllama.errors import InvalidDigest

HEX = "0123456789abcdef" * 4


def test_both_separators() -> None:
    assert Digest.parse(f"sha256:{HEX}") == Digest.parse(f"sha256-{HEX}")
    d = Digest.parse(f"sha256:{HEX}")
    assert str(d) == f"sha256:{HEX}" and d.filename == f"sha256-{HEX}" and d.blob_key() == f"blobs/sha256-{HEX}"


@pytest.mark.parametrize(
    "text",
    [
        "", "sha256:", "sha256:abc", f"sha256:{HEX}0", f"sha256:{HEX[:-1]}", f"sha256:{HEX.upper()}",
        f"sha512:{HEX}", f"SHA256:{HEX}", "sha256:../x", f"sha256:{HEX[:-3]}/..", f"sha256:{HEX}\n",
        f"sha256:{HEX}\x00", f"sha256 {HEX}", f"sha256:{HEX[:-1]}٣", "sha256%3A" + HEX, HEX, None, 5,
    ],
)
def test_bad_digests(text: object) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


@given(st.text(max_size=80))
def test_blob_key_is_always_safe(text: str) -> None:
    try:
        d = Digest.parse(text)
    except InvalidDigest:
        return
    assert d.blob_key().startswith("blobs/sha256-") and len(d.blob_key()) == len("blobs/sha256-") + 64


def test_of_bytes() -> None:
    assert Digest.of_bytes(b"").hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
