"""shopgraph: recommendations, offers and ad audiences from a shop's interaction graph."""

__version__ = "0.1.0"
__all__ = ["__version__"]
