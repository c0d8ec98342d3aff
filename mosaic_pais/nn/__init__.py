"""The PAIS network: its Keras layers (:mod:`~mosaic_pais.nn.layers`), the model built from
them and its predictor (:mod:`~mosaic_pais.nn.model`). Used by runs and by training alike."""
