"""Import Keras (and so TensorFlow) without TensorFlow's C++ start-up chatter.

TensorFlow 2.21 writes oneDNN / CUDA-stub notices straight to file descriptor 2 before any
Python log level applies, so every script's output (and its one-line user errors) would start
with three lines of noise. During the import, fd 2 goes to a temporary file, which is replayed
on stderr if the import fails, so a broken install still shows its real message.
``IBVAE_VERBOSE_IMPORT=1`` turns this off.
"""

from __future__ import annotations

import os
import sys
import tempfile


def import_keras_quietly() -> None:
    if os.environ.get("IBVAE_VERBOSE_IMPORT") == "1" or "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some embedded interpreters): import as is
        import keras  # noqa: F401

        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


import_keras_quietly()
