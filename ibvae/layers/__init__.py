"""Keras 3 layers of Information Dropout: the noise layers (:mod:`.noise`; the fixed-alpha
control in :mod:`.lognormal`), the padded
convolutions (:mod:`.conv`) and the pools built from them (:mod:`.pools`, :mod:`.pool_bn`)."""

from ibvae.layers.conv import PADDINGS, ConvBNReLU, PaddedConv2D
from ibvae.layers.lognormal import LogNormalDropout
from ibvae.layers.noise import GaussianSampler, InformationDropout, KLNoiseLayer
from ibvae.layers.pool_bn import InformationPoolBN
from ibvae.layers.pools import InformationConv2D, InformationDense, InformationPool

__all__ = [
    "PADDINGS",
    "ConvBNReLU",
    "GaussianSampler",
    "InformationConv2D",
    "InformationDense",
    "InformationDropout",
    "InformationPool",
    "InformationPoolBN",
    "KLNoiseLayer",
    "LogNormalDropout",
    "PaddedConv2D",
]
