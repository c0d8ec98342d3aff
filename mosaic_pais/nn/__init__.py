"""The PAIS network: its Keras layers (:mod:`~mosaic_pais.nn.layers`), the model built from
them and its predictor (:mod:`~mosaic_pais.nn.model`). Used by runs and by training alike.

Importing this package loads Keras on TensorFlow, with TensorFlow's start-up lines quiet unless
``TF_CPP_MIN_LOG_LEVEL`` says otherwise; ``import mosaic_pais`` alone does not.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
