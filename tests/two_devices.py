"""Two devices on this CPU for the distribution drivers: JAX with two virtual host devices,
TensorFlow with two logical CPU devices. Call before Keras starts (devices are fixed then)."""

import os


def use_two_devices(backend: str) -> None:
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    else:
        import tensorflow as tf  # only the TensorFlow driver needs it, and before Keras

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
