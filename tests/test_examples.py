"""The documentation's example programs (docs/examples/*.py) run as written, each on tiny
data (their --tiny flag), and produce what their pages say; every example has a page."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"

pytestmark = pytest.mark.slow


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_has_a_page_that_shows_it():
    programs = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert len(programs) >= 4, programs
    for name in programs:
        page = EXAMPLES / f"{name}.md"
        assert page.is_file(), f"docs/examples/{name}.py has no page"
        assert f'--8<-- "docs/examples/{name}.py"' in page.read_text(), page


def test_own_vae(tmp_path, capsys):
    report = load("own_vae").main(["--tiny", "--out", str(tmp_path / "vae.keras")])
    out = capsys.readouterr().out
    assert re.search(r"test neg-ELBO \d+\.\d, IW-NLL \d+\.\d, \d+ active units", out), out
    assert "codes (8, 16), reconstructions (8, 28, 28, 1), samples (16, 28, 28, 1)" in out
    assert report["iw_nll"] <= report["neg_elbo"] + 1e-3  # the IW bound is the tighter one
    assert (tmp_path / "vae.keras").is_file()


def test_classifier_kl_map(tmp_path, capsys):
    result = load("classifier_kl_map").main(["--tiny", "--out", str(tmp_path / "kl.png")])
    out = capsys.readouterr().out
    assert re.search(r"test accuracy \d\.\d{3}", out), out
    assert result["heatmap"].shape == (9, 9)  # 40 px -> 19 -> 9 cells (valid stride-2 pools)
    assert result["heatmap"].min() == 0.0 and result["heatmap"].max() > 0
    assert (tmp_path / "kl.png").stat().st_size > 1000


def test_beta_seed_experiment(tmp_path, capsys):
    result = load("beta_seed_experiment").main(["--tiny", "--out", str(tmp_path / "exp")])
    out = capsys.readouterr().out
    assert out.count(": completed, evaluated iw_nll") == 4, out  # 2 latents x 2 betas x 1 seed
    rows = [r for r in result["rows"] if r["status"] == "completed"]
    assert len(rows) == 4
    assert "| information_dropout_lognormal | 2.0 |" in out
    assert (tmp_path / "exp" / "figures" / "rate_vs_beta.png").is_file()
    # the rate falls with beta for each latent
    for label in ("gaussian", "information_dropout_lognormal"):
        rate = {float(r["beta"]): float(r["rate"]) for r in rows if r["config"] == label}
        assert rate[2.0] < rate[0.5], rate


def test_load_run(capsys):
    result = load("load_run").main(["--tiny"])
    out = capsys.readouterr().out
    assert "status completed" in out, out
    assert "from the aggregate posterior" in out, out  # the log-uniform latent's only sampler
    assert result["samples"].shape == (16, 28, 28, 1)
    assert result["interpolations"].shape == (4, 8, 28, 28, 1)
    assert np.all((result["samples"] >= 0) & (result["samples"] <= 1))
    assert (result["run"] / "example_interpolations.png").is_file()
