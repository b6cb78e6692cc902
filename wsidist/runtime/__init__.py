"""How slide jobs run: the Dask cluster, the one per-slide task template, the results loop,
the job table, a bounded parallel map, and the job-configuration base shared by every stage.

Stages supply what a slide's work is; this room supplies everything around it (skip, failure
rows, status, retries, progress), so every stage behaves the same on a rerun or a bad slide.
"""
