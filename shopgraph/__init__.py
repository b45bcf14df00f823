"""shopgraph: recommendations, offers and ad audiences from a shop's interaction graph."""

from shopgraph.version import __version__
from shopgraph.workspace import Workspace, open

__all__ = ["Workspace", "__version__", "open"]
