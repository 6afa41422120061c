"""ibvae: Information Dropout (Achille & Soatto, arXiv:1611.01353) for Keras 3.

The public API, re-exported from the modules that define it:

* layers: :class:`InformationDropout`, :class:`GaussianSampler`, :class:`LogNormalDropout` (the fixed-alpha control), the pools
  (:class:`InformationDense`, :class:`InformationConv2D`, :class:`InformationPoolBN`) and
  the convolutions they are built from;
* the IB-VAE: :class:`VAE` (bring your own encoder and decoder), :func:`evaluate_vae`,
  :func:`train_vae`, its configs;
* the supervised experiment: :class:`AllCNN`, :func:`train_classifier`, its configs;
* :func:`run_experiment`: an experiment spec (configs, grid, evaluations, tables) run point by
  point here, on local workers or on Ray, into ``results.csv``, tables and figures;
  :func:`sweep_beta`, its shortcut for a grid of beta and seeds;
* :class:`Task` and :func:`register_task`: one's own kind of training through the same core;
* :class:`IbvaeError`, the one exception type for user mistakes.
"""

from ibvae.classifier.batchnorm import recalibrate_batchnorm
from ibvae.classifier.config import (
    ClassifierConfig,
    ClassifierModelConfig,
    ClassifierTrainConfig,
    ClutterConfig,
)
from ibvae.classifier.kl_maps import evaluate_kl_maps, kl_maps
from ibvae.classifier.models import AllCNN, build_classifier, load_classifier
from ibvae.classifier.train import train_classifier
from ibvae.data import Dataset, load_dataset
from ibvae.errors import IbvaeError
from ibvae.experiments import Execution, run_experiment
from ibvae.layers import (
    ConvBNReLU,
    GaussianSampler,
    InformationConv2D,
    InformationDense,
    InformationDropout,
    InformationPool,
    InformationPoolBN,
    LogNormalDropout,
    PaddedConv2D,
)
from ibvae.sweep import SweepOptions, sweep_beta
from ibvae.training import Task, register_task
from ibvae.vae.config import VAEConfig, VAEModelConfig, VAETrainConfig
from ibvae.vae.evaluate import evaluate_vae
from ibvae.vae.model import VAE, build_vae, load_vae
from ibvae.vae.sampling import AggregatePosterior, fit_aggregate
from ibvae.vae.train import train_vae

__all__ = [
    "VAE",
    "AggregatePosterior",
    "AllCNN",
    "ClassifierConfig",
    "ClassifierModelConfig",
    "ClassifierTrainConfig",
    "ClutterConfig",
    "ConvBNReLU",
    "Dataset",
    "Execution",
    "GaussianSampler",
    "IbvaeError",
    "InformationConv2D",
    "InformationDense",
    "InformationDropout",
    "InformationPool",
    "InformationPoolBN",
    "LogNormalDropout",
    "PaddedConv2D",
    "SweepOptions",
    "Task",
    "VAEConfig",
    "VAEModelConfig",
    "VAETrainConfig",
    "build_classifier",
    "build_vae",
    "evaluate_kl_maps",
    "evaluate_vae",
    "fit_aggregate",
    "kl_maps",
    "load_classifier",
    "load_dataset",
    "load_vae",
    "recalibrate_batchnorm",
    "register_task",
    "run_experiment",
    "sweep_beta",
    "train_classifier",
    "train_vae",
]
__version__ = "0.2.0"
