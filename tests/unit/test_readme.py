"""The README keeps its promises: two commands first, .ci/run runs the second, every setting documented."""

import re
from pathlib import Path

from skyllama.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", head, flags=re.S)


def test_readme_opens_with_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "skyllama serve --demo" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci


def test_every_setting_is_documented() -> None:
    text = (ROOT / "README.md").read_text()
    for variable, _default, _description in Settings.describe():
        assert f"`{variable}`" in text, variable
