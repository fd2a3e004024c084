"""Package version and the image registry name (Clipper's version.py)."""
import os

__version__ = "0.4.1"
__registry__ = os.environ.get("CLIPPER_REGISTRY", "clipper")
