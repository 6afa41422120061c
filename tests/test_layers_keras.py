"""Every public layer of ``ibvae.layers`` through Keras' own layer test,
``keras.src.testing.TestCase.run_layer_test``: symbolic and eager output shapes agree and are
the expected ones, the weight, seed-generator and loss counts are the expected ones, the layer
trains (a ``fit`` step; single-input layers), survives a per-layer mixed-float16 dtype (layers
without sub-layers) and a ``get_config`` / ``from_config`` and ``.keras`` round trip. Each
public layer's docstring has Keras' sections (Args, Call arguments, Input shape, Output shape,
Example) and its example runs as shown. Runs on the active backend (TensorFlow by default;
CI runs it on JAX too)."""

import doctest

import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src.testing import TestCase

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

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@keras.saving.register_keras_serializable(package="ibvae_tests")
class TwoDensePool(InformationPool):
    """A pool of one's own: the base class gets only the two projections."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.features = keras.layers.Dense(units, activation="relu", name="features")
        self.alpha_logits = keras.layers.Dense(units, name="alpha_logits")

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# (id, layer class, constructor kwargs, input shape, expected output shape, trainable weights,
#  non-trainable weights, seed generators, losses added per call)
CASES = [
    ("dropout_log_uniform", InformationDropout, {"seed": 1}, [(2, 5), (2, 5)], (2, 5),
     0, 0, 1, 1),
    ("dropout_log_normal", InformationDropout, {"prior": "log_normal", "seed": 1},
     [(2, 3, 4), (2, 3, 4)], (2, 3, 4), 2, 0, 1, 1),
    ("dropout_log_normal_unit", InformationDropout,
     {"prior": "log_normal", "prior_shape": "unit", "kl_weight": 0.5},
     [(2, 4), (2, 4)], (2, 4), 2, 0, 1, 1),
    ("dropout_no_kl", InformationDropout, {"kl_weight": 0.0}, [(2, 5), (2, 5)], (2, 5),
     0, 0, 1, 0),
    ("lognormal_dropout", LogNormalDropout, {"alpha": 0.3, "seed": 5}, (2, 3, 4), (2, 3, 4),
     0, 0, 1, 0),
    ("gaussian_sampler", GaussianSampler, {"seed": 2}, [(2, 6), (2, 6)], (2, 6), 0, 0, 1, 1),
    ("dense", InformationDense, {"units": 7, "seed": 0}, (2, 5), (2, 7), 4, 0, 1, 1),
    ("dense_log_normal", InformationDense, {"units": 3, "prior": "log_normal"}, (2, 5), (2, 3),
     6, 0, 1, 1),
    ("conv2d", InformationConv2D, {"filters": 4, "strides": 2, "padding": "symmetric"},
     (2, 8, 8, 3), (2, 4, 4, 4), 4, 0, 1, 1),
    ("conv2d_valid", InformationConv2D, {"filters": 2, "kernel_size": 3, "padding": "valid"},
     (2, 6, 6, 1), (2, 4, 4, 2), 4, 0, 1, 1),
    ("pool_bn", InformationPoolBN, {"filters": 4, "weight_decay": 1e-3, "seed": 3},
     (2, 8, 8, 3), (2, 4, 4, 4), 5, 2, 1, 2),  # the KL and the kernel's L2
    ("own_pool", TwoDensePool, {"units": 3, "max_alpha": 0.5, "seed": 4}, (2, 4), (2, 3),
     4, 0, 1, 1),
    ("padded_conv2d", PaddedConv2D, {"filters": 3, "strides": 2, "padding": "symmetric"},
     (2, 8, 8, 2), (2, 4, 4, 3), 2, 0, 0, 0),
    ("conv_bn_relu", ConvBNReLU, {"filters": 3, "padding": "symmetric"}, (2, 6, 6, 2),
     (2, 6, 6, 3), 3, 2, 0, 0),
]


PUBLIC_LAYERS = (InformationDropout, GaussianSampler, LogNormalDropout, InformationPool, InformationDense,
                 InformationConv2D, InformationPoolBN, PaddedConv2D, ConvBNReLU)

class KerasLayerTest(TestCase):
    @parameterized.named_parameters(
        (case[0], *case[1:]) for case in CASES
    )
    def test_run_layer_test(self, cls, kwargs, in_shape, out_shape, n_trainable,
                            n_non_trainable, n_seeds, n_losses):
        two_inputs = isinstance(in_shape, list)
        self.run_layer_test(
            cls,
            init_kwargs=kwargs,
            input_shape=in_shape,
            expected_output_shape=out_shape,
            expected_num_trainable_weights=n_trainable,
            expected_num_non_trainable_weights=n_non_trainable,
            expected_num_seed_generators=n_seeds,
            expected_num_losses=n_losses,
            supports_masking=False,
            # Keras' fit-step check feeds one array; Keras' own two-input layers (the merging
            # layers) skip it too. tests/test_layers.py trains these layers in models.
            run_training_check=not two_inputs,
        )

    def test_a_per_layer_mixed_precision_policy_reaches_the_sub_layers(self):
        pool = InformationConv2D(4, 3, strides=2, dtype="mixed_float16", seed=0)
        out = pool(np.ones((2, 8, 8, 3), "float32"), training=True)
        self.assertEqual(keras.backend.standardize_dtype(out.dtype), "float16")
        for sub in (pool.features, pool.alpha_logits, pool.dropout):
            self.assertEqual(sub.dtype_policy.name, "mixed_float16")
        self.assertEqual(pool.features.kernel.dtype, "float32")  # variables stay float32

    def test_every_public_layer_is_covered(self):
        covered = {case[1] for case in CASES}
        self.assertEqual(set(PUBLIC_LAYERS) - {InformationPool} - covered, set())
        self.assertTrue(issubclass(TwoDensePool, InformationPool))


@pytest.mark.parametrize("cls", PUBLIC_LAYERS, ids=lambda c: c.__name__)
def test_docstring_example_runs_as_written(cls):
    """Each public layer's docstring has Keras' sections and an example that runs as shown."""
    doc = cls.__doc__
    for section in ("Args:", "Call arguments:", "Input shape:", "Output shape:", "Example:"):
        assert section in doc, f"{cls.__name__}'s docstring lacks {section!r}"
    tests = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__, globs={})
    examples = sum(len(t.examples) for t in tests)
    assert examples >= 2, f"{cls.__name__}'s docstring has no runnable example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {cls.__name__}'s doctest lines failed"
