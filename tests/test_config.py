"""Configs: one declaration per hyperparameter gives its checks, its YAML and its flag."""

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Literal

import pytest

from ibvae import IbvaeError, flags
from ibvae import config as cfg
from ibvae.classifier.config import ClassifierConfig, ClutterConfig
from ibvae.vae.config import VAEConfig, VAEModelConfig
from ibvae.vae.evaluate import EvaluateOptions
from ibvae.vae.sampling import InterpolateOptions, SampleOptions

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# Every config and options class whose fields become a script's flags.
FLAGGED = [VAEConfig, ClassifierConfig, ClutterConfig, EvaluateOptions, SampleOptions,
           InterpolateOptions]


@dataclasses.dataclass
class Inner(cfg.Config):
    rate: float = cfg.option(0.5, "a rate", gt=0)
    sizes: list[int] = cfg.option([1, 2], "sizes", ge=1)


@dataclasses.dataclass
class Small(cfg.Config):
    count: int = cfg.option(3, "a count", ge=0)
    name: Literal["a", "b"] = cfg.option("a", "a name")
    flag: bool = cfg.option(False, "a flag")
    path: str | None = cfg.option(None, "a path")
    limit: int | None = cfg.option(None, "a limit", ge=1, aliases=("--lim",))
    inner: Inner = cfg.section(Inner, "the inner section")


def test_defaults_yaml_and_overrides_in_that_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("count: 5\ninner:\n  rate: 2\n  sizes: [7]\n")
    c = cfg.load(Small, path, {"count": 9, "sizes": [4, 5]})
    assert c == Small(count=9, inner=Inner(rate=2.0, sizes=[4, 5]))
    assert isinstance(c.inner.rate, float)  # an int is accepted where a float is expected


def test_a_mapping_for_a_section_becomes_its_config():
    assert Small(inner={"rate": 3}).inner == Inner(rate=3.0)


def test_unknown_keys_are_refused_with_the_valid_ones_listed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("count: 1\ncont: 2\n")
    with pytest.raises(IbvaeError) as err:
        cfg.load(Small, path)
    assert str(err.value).startswith(f"{path}: unknown config key(s) ['cont']")
    assert "valid keys are: count, flag, inner, limit, name, path" in str(err.value)
    with pytest.raises(IbvaeError, match=r"\['rat'\]; valid keys are: rate, sizes"):
        cfg.from_dict(Small, {"inner": {"rat": 1}})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"inner": {"rate": "fast"}}, "'rate' must be of type float"),
        ({"count": 2.5}, "'count' must be of type int"),
        ({"count": True}, "'count' must be of type int"),  # bool is not an int here
        ({"flag": 1}, "'flag' must be of type bool"),
        ({"inner": {"sizes": 3}}, "'sizes' must be a list"),
        ({"inner": {"sizes": [1, "x"]}}, "'sizes' must be of type int"),
        ({"path": 3}, "'path' must be of type str"),
        ({"count": -1}, "count must be >= 0, got -1"),
        ({"limit": 0}, "limit must be >= 1, got 0"),
        ({"inner": {"rate": 0}}, "rate must be > 0, got 0.0"),
        ({"inner": {"rate": math.inf}}, "rate must be a finite number, got inf"),
        ({"inner": {"rate": math.nan}}, "rate must be a finite number, got nan"),
        ({"inner": {"sizes": [2, 0]}}, "every entry of sizes must be >= 1, got [2, 0]"),
        ({"name": "c"}, "name must be one of ['a', 'b'], got 'c'"),
        ({"inner": 3}, "config section 'inner' must be a mapping"),
    ],
)
def test_wrong_values_are_refused_by_name(values, message):
    with pytest.raises(IbvaeError) as err:
        cfg.from_dict(Small, values)
    assert message in str(err.value)


def test_the_checks_also_run_when_a_config_is_built_in_python():
    with pytest.raises(IbvaeError, match="beta must be >= 0"):
        VAEConfig(model=VAEModelConfig(beta=-1.0))
    with pytest.raises(IbvaeError, match="latent must be one of"):
        VAEConfig(model={"latent": "vq"})


def test_check_values_applies_a_fields_declaration_to_a_models_arguments():
    assert cfg.check_values(VAEModelConfig, beta=2, latent="gaussian") == {
        "beta": 2.0, "latent": "gaussian"}
    with pytest.raises(IbvaeError, match="max_alpha must be > 0, got 0.0"):
        cfg.check_values(VAEModelConfig, max_alpha=0)


def test_save_then_load_gives_the_same_config(tmp_path):
    c = VAEConfig(model={"latent": "gaussian", "latent_dim": 7, "hidden": [30, 20], "beta": 0.25},
                  train={"data": "x.npz"})
    cfg.save(c, tmp_path / "c.yaml")
    assert cfg.load(VAEConfig, tmp_path / "c.yaml") == c
    assert cfg.load(VAEConfig, tmp_path / "c.yaml", complete=True) == c


def test_complete_refuses_a_missing_field(tmp_path):
    with pytest.raises(IbvaeError, match=r"config lacks key\(s\) \['train'\]"):
        cfg.from_dict(VAEConfig, {"model": cfg.to_dict(VAEModelConfig())}, complete=True)
    partial = {"model": {"latent": "gaussian"}, "train": {}}
    with pytest.raises(IbvaeError, match="config lacks key"):
        cfg.from_dict(VAEConfig, partial, complete=True)


def test_a_saved_config_from_before_a_field_was_added_reads_as_the_old_behaviour():
    saved = cfg.to_dict(ClassifierConfig())
    del saved["train"]["lr_schedule"]  # a run saved before the field existed
    assert cfg.from_dict(ClassifierConfig, saved, complete=True).train.lr_schedule == "step"
    del saved["train"]["lr_drops"]  # a field every run has saved: still an error
    with pytest.raises(IbvaeError, match=r"config lacks key\(s\) \['lr_drops'\]"):
        cfg.from_dict(ClassifierConfig, saved, complete=True)


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


# --------------------------------------------------------------------------- flags


def parse(cls, argv):
    p = argparse.ArgumentParser()
    flags.add_flags(p, cls)
    return flags.flag_overrides(p.parse_args(argv), cls)


def flag_examples(leaf):
    """Command lines that set ``leaf`` through its flag, with the value each must give."""
    flag, default = flags.flag_name(leaf), leaf.default
    tp = leaf.type
    if getattr(tp, "__origin__", None) is Literal:
        return [([flag, str(choice)], choice) for choice in tp.__args__]
    if tp is bool:
        return [([flag], True), (["--no-" + flag[2:]], False)]
    if isinstance(default, list):
        return [([flag, *map(str, default)], default)]
    if default is None:
        return [([flag, "none"], None)]
    return [([flag, str(default)], default)]


@pytest.mark.parametrize("cls", FLAGGED, ids=lambda c: c.__name__)
def test_every_field_has_its_flag_with_its_type_choices_and_help(cls):
    p = argparse.ArgumentParser(formatter_class=lambda prog: argparse.HelpFormatter(prog, width=999))
    flags.add_flags(p, cls)
    help_text = " ".join(p.format_help().split())
    names = [leaf.name for leaf in cfg.leaves(cls)]
    assert len(names) == len(set(names)), "leaf names must be unique: they name the flags"
    for leaf in cfg.leaves(cls):
        assert flags.flag_name(leaf) in help_text and " ".join(leaf.help.split()) in help_text
        for argv, value in flag_examples(leaf):
            assert parse(cls, argv) == {leaf.name: value}, argv


@pytest.mark.parametrize("cls", FLAGGED, ids=lambda c: c.__name__)
def test_no_flags_given_means_the_defaults(cls):
    assert parse(cls, []) == {}
    assert cfg.load(cls, None, parse(cls, [])) == cls()


def test_flags_become_overrides_of_the_right_type():
    given = parse(Small, ["--count", "4", "--name", "b", "--flag", "--sizes", "3", "4",
                          "--rate", "0.5", "--lim", "2", "--path", "p.npz"])
    assert given == {"count": 4, "name": "b", "flag": True, "sizes": [3, 4], "rate": 0.5,
                     "limit": 2, "path": "p.npz"}
    assert parse(Small, ["--no-flag", "--limit", "none"]) == {"flag": False, "limit": None}
    with pytest.raises(SystemExit):
        parse(Small, ["--name", "c"])  # argparse refuses a value outside the choices


def test_the_real_configs_flags_are_the_documented_ones():
    names = {flags.flag_name(leaf) for leaf in cfg.leaves(VAEConfig)}
    assert {"--beta", "--latent", "--latent-dim", "--hidden", "--data", "--epochs"} <= names
    assert parse(VAEConfig, ["--lr", "0.01"]) == {"learning_rate": 0.01}
    assert parse(ClassifierConfig, ["--padding", "valid", "--no-recalibrate"]) == {
        "padding": "valid", "recalibrate": False}


# --------------------------------------------------------------------------- shipped configs


def test_the_shipped_vae_configs_load_complete_and_say_what_they_claim():
    loaded = {p.stem: cfg.load(VAEConfig, p, complete=True)
              for p in sorted(CONFIGS.glob("vae_mnist*.yaml"))}
    assert set(loaded) == {"vae_mnist", "vae_mnist_lognormal", "vae_mnist_gaussian", "vae_mnist_2d"}
    assert loaded["vae_mnist"] == VAEConfig()  # the YAML spells out the defaults
    assert loaded["vae_mnist_lognormal"].model.latent == "information_dropout_lognormal"
    assert loaded["vae_mnist_gaussian"].model.latent == "gaussian"
    two_d = loaded["vae_mnist_2d"].model
    assert (two_d.latent_dim, two_d.hidden) == (2, [256])


def test_the_shipped_classifier_configs_load_complete():
    loaded = {p.stem: cfg.load(ClassifierConfig, p, complete=True)
              for p in sorted(CONFIGS.glob("allcnn*.yaml"))}
    assert set(loaded) == {"allcnn96_cluttered", "allcnn96_cluttered_cpu", "allcnn32_cifar10",
                           "allcnn32_fashion"}
    assert loaded["allcnn96_cluttered"] == ClassifierConfig()  # the authors' settings


@pytest.mark.parametrize(
    "values, message",
    [
        ({"beta": -0.1}, "beta must be >= 0"),
        ({"latent_dim": 0}, "latent_dim must be >= 1"),
        ({"latent": "vq"}, "latent must be one of"),
        ({"arch": "resnet"}, "arch must be one of"),
        ({"targets": "grey"}, "targets must be one of"),
        ({"val_fraction": 0.7}, "val_fraction must be < 0.5"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"hidden": [0]}, "every entry of hidden must be >= 1"),
        ({"conv_filters": []}, "conv_filters must be a non-empty list"),
    ],
)
def test_vae_config_validation(values, message):
    with pytest.raises(IbvaeError, match=message):
        cfg.load(VAEConfig, None, values)
