"""PII in silver: a keyed hash (HMAC-SHA256, so equal values still join) or a mask; raw values stay in bronze.

The key comes from the environment variable named by `privacy.key_env` in the config (MARKETLAKE_PII_KEY by
default). Only where `privacy.allow_dev_key` is true (local development, tests, `make demo`) does a missing key fall
back to the documented, non-secret `privacy.dev_key`; on a cluster a missing key is a configuration error. Change the
key and every hash changes: rebuild silver and gold together.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

from marketlake.errors import ConfigError

log = logging.getLogger(__name__)


def pii_key(privacy: Mapping[str, Any]) -> bytes:
    env = str(privacy.get("key_env", "MARKETLAKE_PII_KEY"))
    value = os.environ.get(env)
    if value:
        return value.encode()
    if not privacy.get("allow_dev_key", False):
        raise ConfigError(f"no PII hashing key: set the environment variable {env} (this environment has no dev key)")
    log.warning("%s is not set: hashing PII with the development key (fine locally, never in production)", env)
    return str(privacy["dev_key"]).encode()


def normalise(value: Column) -> Column:
    """The form a value is hashed in: trimmed and lower-cased, so 'A@x.com ' and 'a@x.com' join."""
    return F.lower(F.trim(value))


def hmac_sha256(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 (RFC 2104) of the value's UTF-8 bytes, as 64 hex digits; null stays null.

    Computed in a pandas UDF whose closure holds the key: a key (or its pads) written as a literal in a Spark
    expression would be printed by EXPLAIN, the UI and the event log, and anyone reading them could re-hash
    guessed emails."""

    @F.pandas_udf("string")  # type: ignore[call-overload]
    def keyed_hash(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if v is None else hmac.new(key, v.encode("utf-8"), hashlib.sha256).hexdigest())

    return keyed_hash(value)


def mask(value: Column) -> Column:
    """First character, then ***."""
    return F.when(value.isNotNull(), F.concat(F.substring(value, 1, 1), F.lit("***")))


def mask_ip(value: Column) -> Column:
    """An IPv4 address with its last octet zeroed (its network stays usable for geo and fraud)."""
    return F.regexp_replace(value, r"\.\d+$", ".0")


def protected_name(column: str, treatment: str) -> str:
    return f"{column}_hash" if treatment == "hash" else f"{column}_masked"


def protect(value: Column, treatment: str, key: bytes) -> Column:
    if treatment == "hash":
        return hmac_sha256(normalise(value), key)
    if treatment == "mask":
        return mask(value)
    return mask_ip(value)
