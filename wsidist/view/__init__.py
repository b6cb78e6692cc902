"""``wsidist view``: a local deep-zoom viewer of slides and wsidist pyramids, with overlays.

:func:`~wsidist.view.app.make_viewer` builds the catalogue and the app;
:func:`~wsidist.view.app.serve` runs it with uvicorn on 127.0.0.1.
"""
