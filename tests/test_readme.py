"""The README stays true: its Python examples run as written, in order; every shell command
names a script that exists and only flags that script accepts; its test block is exactly
what CI runs; every file it links to exists."""

import re
import shlex
from pathlib import Path

import pytest
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


def commands() -> list[list[str]]:
    """Each shell command of the README as argv (continuations joined, comments dropped)."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and "=" in words[0]:  # KERAS_BACKEND=jax ...
                words = words[1:]
            if words:
                out.append(words)
    return out


def test_readme_python_examples_run(capsys, tmp_path, monkeypatch):
    python = blocks("python")
    assert len(python) >= 2, "README lost its Python examples"
    monkeypatch.chdir(tmp_path)  # the examples save files into the working directory
    namespace: dict = {}
    outputs = []
    for block in python:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        outputs.append(capsys.readouterr().out)
    assert (tmp_path / "my_vae.keras").is_file()
    assert re.search(r"neg-ELBO \d+\.\d, IW-NLL \d+\.\d, \d+ active units", outputs[0]), outputs[0]
    assert namespace["x_new"].shape == (16, 28, 28, 1)
    assert outputs[-1].strip().endswith("(2, 256)")


SCRIPTS = sorted({argv[1] for argv in commands() if argv[0] == "python"})


def test_readme_commands_are_the_scripts_there_are():
    assert len(SCRIPTS) >= 6, SCRIPTS
    for script in SCRIPTS:
        assert (ROOT / script).is_file(), script


@pytest.mark.parametrize("script", SCRIPTS)
def test_readme_flags_are_flags_of_the_script(script, capsys):
    module = load_script(Path(script).stem, ROOT / Path(script).parent)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    helptext = capsys.readouterr().out
    for argv in commands():
        if argv[:2] == ["python", script]:
            for flag in (w.split("=")[0] for w in argv[2:] if w.startswith("--")):
                assert re.search(rf"(^|[\s,\[]){re.escape(flag)}\b", helptext), \
                    f"README: {script} has no flag {flag}"


def test_readme_test_block_is_what_ci_runs():
    (readme_block,) = [b for b in blocks("bash") if b.startswith("ruff check .")]
    ci = (ROOT / ".ci" / "run").read_text()
    ci_block = ci.split("verbatim ---\n", 1)[1].split("\n\n", 1)[0]
    assert readme_block.strip() == ci_block.strip()
    assert "mkdocs build --strict" in ci and "mkdocs build --strict" in TEXT
    assert "mkdocs serve" in TEXT


def test_readme_is_short_and_its_links_exist():
    assert len(TEXT.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", TEXT):
        if not target.startswith("http"):
            assert (ROOT / target).is_file(), target
