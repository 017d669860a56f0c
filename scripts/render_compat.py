"""Write skyllama.compat's table into README.md between the compat markers."""

from pathlib import Path

from skyllama.compat import render

START, END = "<!-- compat:start -->", "<!-- compat:end -->"

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
head, rest = text.split(START, 1)
_old, tail = rest.split(END, 1)
readme.write_text(f"{head}{START}\n{render()}\n{END}{tail}")
