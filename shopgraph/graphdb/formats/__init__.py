"""Loaders for the input formats: each parses files into a validated :class:`SourceData`."""
