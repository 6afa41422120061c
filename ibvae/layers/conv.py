"""Convolutions the pools and the All-CNN are built from: one padded convolution (the one
place the symmetric padding lives) and the authors' ``conv -> BatchNorm -> ReLU`` block.

``padding="symmetric"`` pads ``(kernel_size - 1) // 2`` zeros on every side, then runs a valid
convolution (same output size as ``"same"`` for odd kernels). With stride 2 on an even input,
Keras' ``"same"`` pads only the bottom and right, which shows up as a bright last row and
column in KL heatmaps. ``"symmetric"`` does not remove that border effect: the extra
bottom/right row is never read, so it moves the padded border to the top/left. Only
``"valid"`` has no output that reads padding (at the price of a smaller map).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from ibvae.distribute import sync_batchnorm
from ibvae.errors import one_of

PADDINGS = ("same", "valid", "symmetric")


@keras.saving.register_keras_serializable(package="ibvae")
class PaddedConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a third padding mode, ``"symmetric"``.

    ``"symmetric"`` pads ``(kernel_size - 1) // 2`` zeros on every side, then runs a valid
    convolution (see the module docstring for what that does at stride 2); ``"same"`` and
    ``"valid"`` are Keras' own. Square kernels and strides only (one integer each).

    Args:
        filters: Integer, the number of output channels.
        kernel_size: Integer, the side of the square kernel.
        strides: Integer, the stride along both spatial axes.
        padding: ``"same"``, ``"valid"`` or ``"symmetric"``.
        **kwargs: Any other argument of ``keras.layers.Conv2D`` (``activation``,
            ``use_bias``, ``kernel_regularizer``, ...).

    Call arguments:
        inputs: A 4D tensor, channels last.

    Input shape:
        4D tensor ``(batch, height, width, channels)``.

    Output shape:
        4D tensor ``(batch, new_height, new_width, filters)``; with ``"symmetric"`` and an
        odd kernel, ``new_height = ceil(height / strides)`` as with ``"same"``.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import PaddedConv2D
    >>> conv = PaddedConv2D(8, 3, strides=2, padding="symmetric")
    >>> tuple(conv(np.zeros((1, 32, 32, 3), "float32")).shape)
    (1, 16, 16, 8)
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        **kwargs: Any,
    ) -> None:
        self.padding_mode = one_of("padding", padding, PADDINGS)
        kernel_size = int(kernel_size if not isinstance(kernel_size, list | tuple) else kernel_size[0])
        strides = int(strides if not isinstance(strides, list | tuple) else strides[0])
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding="valid" if padding == "symmetric" else padding,
            **kwargs,
        )
        self.pad = (kernel_size - 1) // 2 if padding == "symmetric" else 0

    def padded(self, inputs):
        if not self.pad:
            return inputs
        p = self.pad
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]])

    def padded_shape(self, input_shape):
        if not self.pad:
            return tuple(input_shape)
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s + 2 * self.pad  # noqa: E731
        return (n, grow(h), grow(w), c)

    def build(self, input_shape) -> None:
        super().build(self.padded_shape(input_shape))

    def compute_output_shape(self, input_shape):
        return super().compute_output_shape(self.padded_shape(input_shape))

    def call(self, inputs):
        return super().call(self.padded(inputs))

    def get_config(self) -> dict:
        config = super().get_config()
        config["padding"] = self.padding_mode
        return config


@keras.saving.register_keras_serializable(package="ibvae")
class ConvBNReLU(keras.layers.Layer):
    """``conv (no bias) -> BatchNorm -> ReLU``, the authors' ``conv`` with ``normalizer_fn``.

    The convolution is a :class:`PaddedConv2D`. ``moments_hook``: while
    :func:`ibvae.classifier.batchnorm.recalibrate_batchnorm` traces a pass, each call reports
    ``(self, batch mean, batch variance)`` of the BN input through it.

    Args:
        filters: Integer, the number of output channels.
        kernel_size: Integer, the side of the square kernel.
        strides: Integer, the stride along both spatial axes.
        padding: ``"same"``, ``"valid"`` or ``"symmetric"`` (see :class:`PaddedConv2D`).
        weight_decay: Float >= 0, the authors' ``wd * l2_loss(kernel)``: an L2 penalty of
            ``weight_decay / 2`` on the kernel, added to the layer's losses.

    Call arguments:
        x: A 4D tensor, channels last.
        training: Python boolean, whether batch norm uses the batch's statistics (and
            updates its moving averages) or its moving averages.

    Input shape:
        4D tensor ``(batch, height, width, channels)``.

    Output shape:
        4D tensor ``(batch, new_height, new_width, filters)``, values ``>= 0``.

    Example:

    >>> import numpy as np
    >>> from ibvae.layers import ConvBNReLU
    >>> block = ConvBNReLU(16, 3, strides=2, padding="symmetric")
    >>> y = block(np.random.rand(2, 28, 28, 1).astype("float32"), training=True)
    >>> tuple(y.shape), bool(np.asarray(y).min() >= 0)
    ((2, 14, 14, 16), True)
    """

    # A function, not a list, so Keras' state tracking leaves it alone.
    moments_hook = None

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        strides: int = 1,
        padding: str = "same",
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), int(kernel_size), int(strides)
        self.padding = one_of("padding", padding, PADDINGS)
        self.weight_decay = float(weight_decay)
        # tf.nn.l2_loss is sum(w^2) / 2, so the authors' ``wd * l2_loss`` is L2(wd / 2).
        reg = keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None
        self.conv = PaddedConv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=padding,
            use_bias=False,
            kernel_regularizer=reg,
            name="conv",
            dtype=self.dtype_policy,
        )
        # Under a multi-replica TensorFlow strategy the batch statistics are those of the
        # global batch, as on one device (not saved: rebuilt for wherever the model loads).
        self.bn = keras.layers.BatchNormalization(name="bn", synchronized=sync_batchnorm(),
                                                  dtype=self.dtype_policy)

    def build(self, input_shape) -> None:
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def call(self, x, training=None):
        return self.normalize(self.conv(x), training=training)

    def normalize(self, h, training=None):
        """``ReLU(BN(h))`` of this block's convolution output ``h``, computed here or by a
        caller that ran the convolution fused with another (:func:`fused_linear`)."""
        if self.moments_hook is not None:
            self.moments_hook(self, ops.mean(h, axis=(0, 1, 2)), ops.var(h, axis=(0, 1, 2)))
        return ops.relu(self.bn(h, training=training))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            weight_decay=self.weight_decay,
        )
        return config


def fused_linear(inputs: Any, layers: Sequence[keras.layers.Layer]) -> list[Any]:
    """Outputs of ``layers`` on one input, as one matmul or convolution with their kernels
    concatenated along the output axis, then split (each bias and activation applied to its
    own part): what two parallel projections of the same input cost as one wider op.

    ``layers`` are all ``keras.layers.Dense`` or all :class:`PaddedConv2D` with the same
    kernel size, stride, padding and dilation (channels last, one group), so the symmetric
    padding is done once. The kernels stay each layer's own variables (saved as before); the
    concatenation is part of the step, and its gradient splits back onto each kernel.
    """
    first = layers[0]
    kernel = ops.concatenate([layer.kernel for layer in layers], axis=-1)
    if isinstance(first, PaddedConv2D):
        for layer in layers:
            same = (layer.kernel_size, layer.strides, layer.padding_mode, layer.dilation_rate)
            geometry = (first.kernel_size, first.strides, first.padding_mode, first.dilation_rate)
            if not isinstance(layer, PaddedConv2D) or same != geometry or layer.groups != 1:
                raise ValueError(f"cannot fuse {layer.name} with {first.name}: other geometry")
            if layer.data_format != "channels_last":
                raise ValueError(f"cannot fuse {layer.name}: needs channels_last")
        y = first.convolution_op(first.padded(inputs), kernel)
    else:
        if not all(isinstance(layer, keras.layers.Dense) for layer in layers):
            raise ValueError("fused_linear takes Dense or PaddedConv2D layers, not a mix")
        y = ops.matmul(inputs, kernel)
    ends, end = [], 0
    for layer in layers[:-1]:
        end += int(layer.kernel.shape[-1])
        ends.append(end)
    parts = ops.split(y, ends, axis=-1) if ends else [y]
    outputs = []
    for layer, part in zip(layers, parts, strict=True):
        if layer.use_bias:
            part = ops.add(part, layer.bias)
        outputs.append(layer.activation(part))
    return outputs
