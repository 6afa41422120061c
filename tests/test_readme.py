"""The README's layer-API example runs as written (keeps the README true)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_layer_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], str(README), "exec"), {})  # noqa: S102
    assert capsys.readouterr().out.strip().endswith("(2, 256)")
