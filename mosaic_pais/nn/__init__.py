"""The PAIS network: its Keras layers (:mod:`~mosaic_pais.nn.layers`), the model built from
them and its predictor (:mod:`~mosaic_pais.nn.model`). Used by runs and by training alike.

Importing this package loads Keras on TensorFlow, in every process that does (a run's parent
and each Dask worker). TensorFlow's C++ start-up lines (oneDNN, CUDA stubs, CPU features,
``cuInit`` on a machine without a GPU) are written to the process's stderr before
``TF_CPP_MIN_LOG_LEVEL`` is read, so the import and the device discovery run with file
descriptor 2 sent to ``/dev/null`` (:func:`import_tensorflow_quietly`); an import that fails
still raises. ``MOSAIC_PAIS_DEBUG=1`` keeps the lines. ``import mosaic_pais`` alone loads none
of this.
"""

import os
import sys

__all__ = ["import_tensorflow_quietly"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and discover its devices with the C++ start-up lines silenced."""
    if "tensorflow" in sys.modules or os.environ.get("MOSAIC_PAIS_DEBUG"):
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor (an embedded interpreter): nothing to silence
        saved = None
    if saved is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


import_tensorflow_quietly()
