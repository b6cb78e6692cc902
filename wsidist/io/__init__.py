"""Reading slides and writing outputs: ``Slide`` and its backends, remote staging, the output
``Store``, input expansion and slide ids, and what wsidist knows of the TIFF format."""

from .slide import Slide, SlideInfo, open_slide
from .storage import Store

__all__ = ["Slide", "SlideInfo", "Store", "open_slide"]
