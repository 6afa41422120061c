"""Run in a fresh process by tests/test_distribution.py (devices must be set up before the
backend starts): one training step of a small VAE or All-CNN on one device and then on two,
through ``ibvae.distribute.Plan``, saving each loss and the updated weights to OUT_{1,2}.npz.

    python tests/distributed_step.py BACKEND {vae,classifier} OUT [FLOATX]
"""

import sys

from two_devices import use_two_devices

backend, model_kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
floatx = sys.argv[4] if len(sys.argv) > 4 else "float32"
use_two_devices(backend)

import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.set_floatx(floatx)

from ibvae import distribute  # noqa: E402
from ibvae.classifier.config import ClassifierModelConfig  # noqa: E402
from ibvae.classifier.models import build_classifier  # noqa: E402
from ibvae.vae.config import VAEModelConfig  # noqa: E402
from ibvae.vae.model import build_vae  # noqa: E402

BATCH = 8


def one_step(plan):
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    with plan.scope():
        if model_kind == "vae":
            x, y = rng.random((BATCH, 28, 28, 1)).astype("float32"), None
            # TensorFlow replicas draw their own noise, so there the noise is made negligible
            # (alpha <= 2e-6: a relative perturbation of ~1e-5) and the targets continuous;
            # JAX traces the global batch, so its draws match one device's: noise stays on.
            quiet = dict(targets="continuous", max_alpha=1e-6, min_alpha=1e-6)
            config = VAEModelConfig(latent="information_dropout_lognormal", latent_dim=3,
                                    hidden=[16], **(quiet if backend == "tensorflow" else {}))
            model = build_vae(config, (28, 28, 1), seed=0)
            model.compile(optimizer=keras.optimizers.SGD(0.01))
        else:
            x = rng.random((BATCH, 32, 32, 1)).astype(floatx)
            y = rng.integers(0, 10, BATCH)
            dropout = "none" if backend == "tensorflow" else "information"
            config = ClassifierModelConfig(width=0.125, dropout=dropout, beta=1.0)
            model = build_classifier(config, (32, 32, 1), n_train=BATCH)
            model.compile(optimizer=keras.optimizers.SGD(0.01),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with plan.scope():
        history = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0], [np.asarray(w) for w in model.weights]


for n, plan in ((1, distribute.Plan("none", BATCH)), (2, distribute.Plan("data_parallel", BATCH))):
    loss, weights = one_step(plan)
    np.savez(f"{out}_{n}.npz", loss=loss, replicas=plan.replicas,
             **{f"w{i}": w for i, w in enumerate(weights)})
