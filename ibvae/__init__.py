"""ibvae: Information Dropout (Achille & Soatto, arXiv:1611.01353) for Keras 3."""

from ibvae.errors import IbvaeError
from ibvae.layers import (
    GaussianSampler,
    InformationConv2D,
    InformationDense,
    InformationDropout,
)

__all__ = [
    "GaussianSampler",
    "IbvaeError",
    "InformationConv2D",
    "InformationDense",
    "InformationDropout",
]
__version__ = "0.1.0"
