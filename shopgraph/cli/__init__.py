"""The ``shopgraph`` command line: a thin layer over :class:`shopgraph.Workspace`."""
