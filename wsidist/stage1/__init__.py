"""Stage 1: slides → tissue masks and scored tiles in hive-partitioned Parquet.

``config`` (what is computed), ``tiles`` and ``scoring`` (the tile grid, its features and the
scorers), ``analysis`` (the pure per-slide computation), ``worker`` (one slide on a worker,
writing its outputs), ``driver`` (the Dask job and ``slides.parquet``), ``render`` (batch-mode
pictures) and ``dynamic`` (the best tiles in memory, nothing written).
"""
