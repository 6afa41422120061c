"""Run in a fresh process by tests/test_distribution.py: the public training entry points
with ``distribution: data_parallel`` on two devices (JAX: two virtual host devices;
TensorFlow: two logical CPU devices), writing ROOT/vae and ROOT/classifier.

    python tests/distributed_train.py BACKEND VAE_DATA.npz CLASSIFIER_DATA.npz ROOT
"""

import sys

from two_devices import use_two_devices

backend, vae_data, classifier_data, root = sys.argv[1:5]
use_two_devices(backend)

import ibvae  # noqa: E402

config = ibvae.VAEConfig(
    model={"latent": "information_dropout_lognormal", "latent_dim": 3, "hidden": [16]},
    train={"dataset": "npz", "data": vae_data, "epochs": 2, "batch_size": 50,
           "distribution": "data_parallel"},
)
ibvae.train_vae(config, run_dir=f"{root}/vae", verbose=0)
config = ibvae.ClassifierConfig(
    model={"width": 0.125},
    train={"data": classifier_data, "epochs": 1, "batch_size": 16, "optimizer": "adam",
           "learning_rate": 0.002, "lr_drops": [], "distribution": "data_parallel"},
)
ibvae.train_classifier(config, run_dir=f"{root}/classifier", verbose=0)
