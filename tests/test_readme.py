"""The README's Python examples run as written, in order (keeps the README true)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3, "README lost its Python examples"
    monkeypatch.chdir(tmp_path)  # the examples save files into the working directory
    namespace: dict = {}
    outputs = []
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        outputs.append(capsys.readouterr().out)
    assert (tmp_path / "my_vae.keras").is_file()
    assert re.search(r"neg-ELBO \d+\.\d, IW-NLL \d+\.\d, \d+ active units", outputs[0]), outputs[0]
    assert outputs[1].strip().startswith("test neg-ELBO")
    assert outputs[-1].strip().endswith("(2, 256)")
