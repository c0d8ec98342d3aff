"""What a run needs: read a mosaic, subtract its sky, tile it, infer the PCR on Dask workers,
stitch the tiles, measure the sources and write the outputs.

Nothing here imports :mod:`mosaic_pais.training`, :mod:`mosaic_pais.sim`,
:mod:`mosaic_pais.evaluation` or :mod:`mosaic_pais.labels`: a run needs none of them.
"""
