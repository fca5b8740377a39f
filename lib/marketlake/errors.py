"""The user-facing errors. Jobs turn each into one clear line and a non-zero exit (see marketlake.cli)."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), or its type's name when it has none: what a one-line error or
    warning quotes of a library's multi-line message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class MarketlakeError(Exception):
    """Base class: a problem the user can fix (input, config, arguments), reported without a stack trace."""


class ConfigError(MarketlakeError):
    """A configuration file or value is missing or invalid."""


class InputError(MarketlakeError):
    """A job argument or input file is invalid (bad date range, unknown domain, unreadable export)."""


class CatalogBusy(MarketlakeError):
    """Another process holds the lakehouse's embedded metastore."""
