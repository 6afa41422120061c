"""ibvae: Information Dropout (Achille & Soatto, arXiv:1611.01353) for Keras 3.

The layers are the core API; the VAE and the All-CNN classifier are built from them.
"""

import ibvae._quiet_import  # noqa: F401  (first: imports Keras without TF's C++ chatter)
from ibvae.classifier import AllCNN, ClassifierConfig, build_classifier, load_classifier
from ibvae.errors import IbvaeError
from ibvae.layers import (
    GaussianSampler,
    InformationConv2D,
    InformationDense,
    InformationDropout,
)
from ibvae.vae import VAE, VAEConfig, build_vae, load_vae

__all__ = [
    "VAE",
    "AllCNN",
    "ClassifierConfig",
    "GaussianSampler",
    "IbvaeError",
    "InformationConv2D",
    "InformationDense",
    "InformationDropout",
    "VAEConfig",
    "build_classifier",
    "build_vae",
    "load_classifier",
    "load_vae",
]
__version__ = "0.1.0"
