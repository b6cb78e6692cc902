"""The report: a static HTML site of a dataset (slide table, charts, one page per slide) that
opens from the file system, built by :func:`~wsidist.report.driver.build_report`; and seed
000's ``slide_info`` / ``slide_stats`` for a folder of slides (:mod:`wsidist.report.stats`)."""
