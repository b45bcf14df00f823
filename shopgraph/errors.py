"""The exceptions shopgraph raises. Each message says what was wrong and what to do next; a
value from the user's data is shown through :func:`quote`, cut to a short prefix."""

#: characters of a value that messages show before cutting it
QUOTE_LIMIT = 40


def shorten(text: object, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as a string of at most ``limit`` characters, plus ``…(N chars)`` when cut."""
    s = str(text)
    return s if len(s) <= limit else f"{s[:limit]}…({len(s)} chars)"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` quoted for a message (``repr`` of its text), cut after ``limit`` characters.

    A 10 MB token thus costs a message about 60 characters, not 10 MB.

    >>> quote("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'…(100 chars)"
    """
    s = str(value)
    return repr(s) if len(s) <= limit else f"{s[:limit]!r}…({len(s)} chars)"


class ShopgraphError(Exception):
    """Base class of every error shopgraph raises on purpose."""


class ConfigError(ShopgraphError, ValueError):
    """A setting is missing or invalid."""


class ServerError(ShopgraphError):
    """The embedded graph server could not be started, reached or stopped."""


class GraphStoreError(ShopgraphError):
    """A query against the graph database failed."""


class InsufficientDataError(ShopgraphError):
    """The data cannot support the answer asked for: too little history, no control group,
    nobody eligible, nothing worth sending.

    This is the only error a pipeline step records as "skipped" (with its message as the
    reason); any other error fails the step, which the next run then retries.
    """


class ArtifactWriteError(ShopgraphError, OSError):
    """A file could not be written (full or read-only disk, no permission); nothing partial
    was left behind."""


class ArtifactFormatError(ShopgraphError):
    """A file shopgraph wrote (checkpoint, index) has another format version than this one
    reads; the message says how to make it again."""


class IngestError(ShopgraphError, ValueError):
    """Input data is invalid; nothing from the failing batch was written.

    Args:
        message: what was wrong and what to do.
        file: the input file, when known.
        line: the 1-based line (or row) number in that file, when known.
        field: the column or field name, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file, self.line, self.field = file, line, field
        where = ", ".join(
            part for part in (
                file and f"file {file}",
                line is not None and f"line {line}",
                field and f"field '{field}'",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class CheckpointMismatchError(ShopgraphError):
    """A checkpoint does not belong to the data or index it is used with."""


class IndexMismatchError(ShopgraphError):
    """A retrieval index does not belong to the checkpoint it is loaded with."""


class UnknownIdError(ShopgraphError, KeyError):
    """A user, item, campaign or category id is not known to the model or the graph."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
