"""The usage cost estimate: the README's price table reproduced, price lists parsed strictly, and
every console file shipped by the package (pyproject's package-data)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from skyllama.pricing import InvalidPrices, Prices
from skyllama.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def readme_rows() -> dict[str, tuple[float, float]]:
    """``request -> (measured ms, $ per 1,000)`` from the README's "Cost per 1,000 requests" table."""
    text = (ROOT / "README.md").read_text()
    rows = {}
    for line in text.splitlines():
        found = re.match(r"\| (`[^|]+`[^|]*) \| (\d+) ms \| .* \| \*\*\$([\d.]+)\*\* \|$", line)
        if found:
            rows[found.group(1)] = (float(found.group(2)), float(found.group(3)))
    return rows


def test_the_default_prices_reproduce_the_readme_table() -> None:
    rows = readme_rows()
    inference = {k: v for k, v in rows.items() if "inference, 10 GB" in k}
    assert len(inference) == 3, rows
    prices = Prices()
    for label, (ms, per_thousand) in inference.items():
        estimate = prices.cost(requests=1000, duration_ns=int(ms * 1e6) * 1000)
        assert estimate == pytest.approx(per_thousand, abs=0.0006), label
    api_gb = Prices.parse("memory_gb=1")
    (tags_ms, tags_cost), = [v for k, v in rows.items() if "api function, 1 GB" in k]
    assert api_gb.cost(requests=1000, duration_ns=int(tags_ms * 1e6) * 1000) == pytest.approx(tags_cost, abs=0.0006)


def test_a_usage_entry_is_priced_by_requests_time_and_tokens() -> None:
    prices = Prices.parse("request=0.001,gb_second=0.5,memory_gb=2,million_tokens=10")
    entry = {"requests": 3, "duration_ns": 2_000_000_000, "prompt_tokens": 60_000, "completion_tokens": 40_000}
    assert prices.cost_of(entry) == pytest.approx(3 * 0.001 + 2 * 2 * 0.5 + 0.1 * 10)
    assert Prices.parse("") == Prices() and Prices.parse(" request=0 ").per_request == 0


@pytest.mark.parametrize("text", ["request", "request=abc", "cents=1", "request=-1", "memory_gb=nan",
                                  "gb_second=inf"])
def test_bad_price_lists_are_refused(text: str) -> None:
    with pytest.raises(InvalidPrices):
        Prices.parse(text)
    with pytest.raises(SettingsError, match="SKYLLAMA_PRICES"):
        Settings.from_env({"SKYLLAMA_PRICES": text})


def test_skyllama_prices_setting_overrides_the_readme_prices() -> None:
    settings = Settings.from_env({"SKYLLAMA_PRICES": "million_tokens=0.5,memory_gb=4"})
    assert settings.price_list == Prices(per_million_tokens=0.5, memory_gb=4)


def test_every_console_file_is_package_data() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["skyllama"]
    package = ROOT / "layers" / "core" / "skyllama"
    files = [p.relative_to(package).as_posix() for p in (package / "http" / "ui_static").rglob("*") if p.is_file()]
    assert len(files) >= 10
    for name in files:
        # setuptools' globs do not cross folders: "http/ui_static/*" holds no "js/x.js"
        assert any(fnmatch.fnmatch(name, g) and name.count("/") == g.count("/") for g in globs), name
