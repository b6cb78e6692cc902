"""Re-selecting and extracting without re-running stage 1: DuckDB selection over the tile
tables (``select``) and patch extraction to files, tar shards and mosaics (``extract``)."""
