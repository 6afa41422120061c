"""Dataclass <-> YAML configs: overrides, type checks, unknown keys, and the shipped configs."""

import dataclasses
from pathlib import Path

import pytest

from ibvae import IbvaeError
from ibvae import config as cfg
from ibvae.vae import VAEConfig

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclasses.dataclass
class Small:
    rate: float = 0.5
    count: int = 3
    name: str = "a"
    flag: bool = False
    path: str | None = None
    sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 2])

    def validate(self) -> None:
        cfg.require(self.count >= 0, f"count must be >= 0, got {self.count}")
        cfg.one_of("name", self.name, ["a", "b"])


def test_defaults_yaml_and_overrides_in_that_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rate: 2\ncount: 5\nsizes: [7]\n")
    c = cfg.load(Small, path, {"count": 9, "name": None})
    assert c == Small(rate=2.0, count=9, sizes=[7])  # None overrides are "not given"
    assert isinstance(c.rate, float)  # an int is accepted where a float is expected


def test_unknown_keys_are_refused_with_the_valid_ones_listed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rate: 1.0\nrat: 2.0\n")
    with pytest.raises(IbvaeError) as err:
        cfg.load(Small, path)
    assert "['rat']" in str(err.value)
    assert "valid keys are: count, flag, name, path, rate, sizes" in str(err.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"rate": "fast"}, "'rate' must be of type float"),
        ({"count": 2.5}, "'count' must be of type int"),
        ({"count": True}, "'count' must be of type int"),  # bool is not an int here
        ({"flag": 1}, "'flag' must be of type bool"),
        ({"sizes": 3}, "'sizes' must be a list"),
        ({"sizes": [1, "x"]}, "'sizes' must be of type int"),
        ({"path": 3}, "'path' must be of type str"),
        ({"count": -1}, "count must be >= 0"),
        ({"name": "c"}, "name must be one of ['a', 'b'], got 'c'"),
    ],
)
def test_wrong_values_are_refused_by_name(values, message):
    with pytest.raises(IbvaeError) as err:
        cfg.from_dict(Small, values)
    assert message in str(err.value)


def test_save_then_load_gives_the_same_config(tmp_path):
    c = VAEConfig(latent="gaussian", latent_dim=7, hidden=[30, 20], beta=0.25, data="x.npz")
    cfg.save(c, tmp_path / "c.yaml")
    assert cfg.load(VAEConfig, tmp_path / "c.yaml") == c


@pytest.mark.parametrize(
    "text, message", [("a: [1,\n", "not valid YAML"), ("- 1\n- 2\n", "must hold a mapping")]
)
def test_bad_yaml_files(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(IbvaeError, match=message):
        cfg.load(Small, path)


def test_a_missing_config_file_is_named():
    with pytest.raises(IbvaeError, match="nowhere.yaml not found"):
        cfg.load(Small, "nowhere.yaml")


def test_the_shipped_vae_configs_load_and_say_what_they_claim():
    loaded = {p.stem: cfg.load(VAEConfig, p) for p in sorted(CONFIGS.glob("vae_mnist*.yaml"))}
    assert set(loaded) == {"vae_mnist", "vae_mnist_lognormal", "vae_mnist_gaussian", "vae_mnist_2d"}
    assert loaded["vae_mnist"] == VAEConfig()  # the YAML spells out the defaults
    assert loaded["vae_mnist_lognormal"].latent == "information_dropout_lognormal"
    assert loaded["vae_mnist_gaussian"].latent == "gaussian"
    two_d = loaded["vae_mnist_2d"]
    assert (two_d.latent_dim, two_d.hidden) == (2, [256])


@pytest.mark.parametrize(
    "values, message",
    [
        ({"beta": -0.1}, "beta must be >= 0"),
        ({"latent_dim": 0}, "latent_dim must be >= 1"),
        ({"latent": "vq"}, "latent must be one of"),
        ({"arch": "resnet"}, "arch must be one of"),
        ({"targets": "grey"}, "targets must be one of"),
        ({"val_fraction": 0.7}, "val_fraction"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"lr": 0}, "lr must be > 0"),
        ({"hidden": [0]}, "hidden sizes"),
    ],
)
def test_vae_config_validation(values, message):
    with pytest.raises(IbvaeError, match=message):
        cfg.from_dict(VAEConfig, values)
