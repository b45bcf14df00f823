"""shopgraph: recommendations, offers and ad audiences from a shop's interaction graph."""

from shopgraph.workspace import Workspace, open

__version__ = "0.1.0"
__all__ = ["Workspace", "__version__", "open"]
