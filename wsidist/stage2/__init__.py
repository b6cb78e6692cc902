"""Stage 2a: glass-removed pyramids (JPEG-XL or JPEG), a lossless JPEG transcode and restore.

``config`` (the rewrite's fields), ``glass`` (which tiles the mask keeps), ``blocks`` (the
per-block read and encode that runs on workers), ``pyramid`` (the one writer per slide),
``transcode`` and ``restore`` (JPEG tiles ↔ JPEG-XL, bit-exact), ``report`` (what one pyramid
produced), ``worker`` (one slide on a worker) and ``driver`` (the Dask job and
``pyramids.parquet``).
"""
