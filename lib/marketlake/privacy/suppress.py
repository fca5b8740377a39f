"""The suppression list at bronze: a landing line about an erased person is not ingested again.

ops.erasure_suppression holds keyed hashes of every identifier an erasure resolved (emails, ids, order
references). A bronze row is suppressed when the keyed hash of any of its identifiers (privacy.erasure.identifiers,
as the erasure reads them) or of any email in its raw line is listed; in a line that could not be parsed, every
word of the line is tried. Suppressed rows are counted (lines read = rows written + rows suppressed), not kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType, TimestampType

from marketlake.config import Settings
from marketlake.privacy.subjects import identifier_exprs, normalised, references_exist, suppression_hash
from marketlake.silver.privacy import pii_key
from marketlake.tables import read_delta, table_exists, table_location

SUPPRESSION = "ops.erasure_suppression"
SUPPRESSION_SCHEMA = StructType(
    [
        StructField("value_hash", StringType(), False),  # subjects.suppression_hash of an identifier value
        StructField("erasure_id", StringType(), False),
        StructField("added_at", TimestampType(), False),
    ]
)
EMAIL_IN_TEXT = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
WORD = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"


@dataclass(frozen=True)
class Suppression:
    key: bytes
    hashes: frozenset[str]
    identifiers: Mapping[str, Mapping[str, Mapping[str, str]]]  # domain -> entity -> identifier -> expression

    def flag(self, rows: DataFrame, domain: str, entity: str) -> Column:
        """True for a bronze row (with _raw_record and _parse_error) that names a suppressed person; always false in a
        domain without people (trends), whose rows then skip the check."""
        if domain not in self.identifiers:
            return F.lit(False)
        exprs = self.identifiers[domain].get(entity, {})
        values = [normalised(e, k) for k, e in exprs.items() if references_exist(e, rows.columns)]
        raw = F.col("_raw_record")
        words = F.when(F.col("_parse_error").isNotNull(), F.regexp_extract_all(raw, F.lit(WORD), F.lit(0)))
        candidates = F.concat(
            F.array(*values).cast("array<string>") if values else F.array().cast("array<string>"),
            F.coalesce(F.regexp_extract_all(raw, F.lit(EMAIL_IN_TEXT), F.lit(0)), F.array().cast("array<string>")),
            F.coalesce(words, F.array().cast("array<string>")),
        )
        key, hashes = self.key, self.hashes

        @F.pandas_udf("boolean")  # type: ignore[call-overload]
        def listed(batches: pd.Series) -> pd.Series:
            def any_listed(values: object) -> bool:
                items = values if values is not None else ()
                return any(v is not None and suppression_hash(key, str(v)) in hashes for v in items)  # type: ignore[attr-defined]

            return batches.map(any_listed)

        return listed(candidates)


def load_suppression(spark: SparkSession, settings: Settings) -> Suppression | None:
    """The suppression list, or None while no erasure has written one (nothing to check, no key needed)."""
    if not table_exists(spark, SUPPRESSION):
        return None
    location = table_location(spark, SUPPRESSION)
    hashes = frozenset(r[0] for r in read_delta(spark, location).select("value_hash").collect())
    if not hashes:
        return None
    return Suppression(pii_key(settings.privacy), hashes, identifier_exprs(settings.privacy))
