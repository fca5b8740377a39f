"""The user-facing errors. Jobs turn each into one clear line and a non-zero exit (see marketlake.cli)."""


class MarketlakeError(Exception):
    """Base class: a problem the user can fix (input, config, arguments), reported without a stack trace."""


class ConfigError(MarketlakeError):
    """A configuration file or value is missing or invalid."""


class InputError(MarketlakeError):
    """A job argument or input file is invalid (bad date range, unknown domain, unreadable export)."""


class CatalogBusy(MarketlakeError):
    """Another process holds the lakehouse's embedded metastore."""
