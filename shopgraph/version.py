"""The version of shopgraph (read by the packaging, the CLI and the report)."""

__version__ = "0.1.0"
