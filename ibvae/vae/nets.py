"""The built-in encoder and decoder (``arch: mlp`` or ``conv``). Any other Keras models with
the same contract work in :class:`ibvae.VAE` too:

* encoder: images ``(H, W, C)`` -> two tensors of the latent shape: the latent layer's
  inputs *before* any activation (Information Dropout: feature pre-activations and alpha
  logits; Gaussian: mean and log-variance);
* decoder: a latent code -> Bernoulli logits of every pixel, shaped like the image.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ibvae.errors import IbvaeError
from ibvae.vae.config import VAEModelConfig

HEAD_NAMES = {
    "information_dropout": ("features", "alpha_logits"),
    "information_dropout_lognormal": ("features", "alpha_logits"),
    "gaussian": ("mean", "log_var"),
}


def check_conv_shape(image_shape: tuple[int, ...], conv_filters: list[int]) -> int:
    """The total stride of ``arch: conv``; the image sides must divide by it."""
    factor = 2 ** len(conv_filters)
    height, width = image_shape[0], image_shape[1]
    if height % factor or width % factor:
        raise IbvaeError(
            f"arch 'conv' with {len(conv_filters)} stride-2 layers needs image sides divisible "
            f"by {factor}, got {height}x{width}; use arch 'mlp' or fewer conv_filters"
        )
    return factor


def build_encoder(config: VAEModelConfig, image_shape: tuple[int, ...]) -> keras.Model:
    """Image -> ``[a, b]``, two linear heads of ``latent_dim`` units named after the latent
    layer's inputs (``features``/``alpha_logits`` or ``mean``/``log_var``)."""
    x_in = keras.Input(image_shape, name="image")
    h = x_in
    if config.arch == "conv":
        check_conv_shape(image_shape, config.conv_filters)
        for i, filters in enumerate(config.conv_filters):
            h = keras.layers.Conv2D(
                filters, 3, strides=2, padding="same", activation="relu", name=f"conv_{i}"
            )(h)
    h = keras.layers.Flatten()(h)
    for i, units in enumerate(config.hidden):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(h)
    a_name, b_name = HEAD_NAMES[config.latent]
    a = keras.layers.Dense(config.latent_dim, name=a_name)(h)
    b = keras.layers.Dense(config.latent_dim, name=b_name)(h)
    return keras.Model(x_in, [a, b], name="encoder")


def build_decoder(config: VAEModelConfig, image_shape: tuple[int, ...]) -> keras.Model:
    """Latent code -> Bernoulli logits of every pixel, shaped like the image."""
    z_in = keras.Input((config.latent_dim,), name="z")
    h = z_in
    for i, units in enumerate(reversed(config.hidden)):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(h)
    if config.arch == "mlp":
        h = keras.layers.Dense(int(np.prod(image_shape)), name="logits")(h)
        out = keras.layers.Reshape(image_shape, name="image_logits")(h)
        return keras.Model(z_in, out, name="decoder")
    factor = check_conv_shape(image_shape, config.conv_filters)
    height, width, channels = image_shape
    small = (height // factor, width // factor, config.conv_filters[-1])
    h = keras.layers.Dense(int(np.prod(small)), activation="relu", name="project")(h)
    h = keras.layers.Reshape(small)(h)
    for i, filters in enumerate(reversed(config.conv_filters[:-1])):
        h = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", activation="relu", name=f"deconv_{i}"
        )(h)
    out = keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name="image_logits")
    return keras.Model(z_in, out(h), name="decoder")


def _shape(tensor: Any) -> tuple:
    return tuple(tensor.shape[1:])


def check_networks(encoder: Any, decoder: Any) -> tuple[tuple, tuple]:
    """``(image_shape, latent_shape)`` of a compatible encoder / decoder pair: the contract a
    VAE needs of its two networks (your own or the built-in ones), one clear error each."""
    for name, net in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(net, keras.Model) or not getattr(net, "inputs", None):
            raise IbvaeError(
                f"{name} must be a functional keras.Model (built from keras.Input) so that its "
                f"shapes are known, got {type(net).__name__}"
            )
    if len(encoder.inputs) != 1 or len(encoder.outputs) != 2:
        raise IbvaeError(
            "encoder must map one image input to two tensors [a, b] of the latent shape, got "
            f"{len(encoder.inputs)} input(s) and {len(encoder.outputs)} output(s)"
        )
    image_shape, (a, b) = _shape(encoder.inputs[0]), encoder.outputs
    if _shape(a) != _shape(b) or None in _shape(a) or None in image_shape:
        raise IbvaeError(
            f"encoder outputs must have one fixed shape, got {_shape(a)} and {_shape(b)} "
            f"(input {image_shape})"
        )
    if len(decoder.inputs) != 1 or len(decoder.outputs) != 1:
        raise IbvaeError("decoder must map one latent code to one image-shaped tensor")
    if _shape(decoder.inputs[0]) != _shape(a):
        raise IbvaeError(
            f"decoder input shape {_shape(decoder.inputs[0])} must be the encoder's output "
            f"shape {_shape(a)}"
        )
    if _shape(decoder.outputs[0]) != image_shape:
        raise IbvaeError(
            f"decoder output shape {_shape(decoder.outputs[0])} must be the image shape "
            f"{image_shape}"
        )
    return image_shape, _shape(a)
