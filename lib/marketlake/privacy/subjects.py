"""Who a person is in the lakehouse: the identifiers an erasure or a subject-access request starts from, followed
through bronze to a fixed point, and the condition that picks that person's rows out of any table of any layer.

A request names an email (both domains), a commerce customer id or an exchange user id. Bronze is the record of
everything that arrived, so identities are resolved there, with the expressions in `privacy.erasure.identifiers`:
an email leads to customer ids, customer ids to orders, orders to their returns, fulfillment events and sessions.
Silver and gold tables are matched by their columns (user_id, customer_id, order_id, session_id, email_hash,
customer_key); bronze and quarantine rows also by the raw line, so that a malformed line naming the person is
found too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from marketlake import fs
from marketlake.errors import ConfigError, InputError
from marketlake.maintain import TableRef, find_tables
from marketlake.tables import read_delta

REQUEST_KINDS = ("email", "customer_id", "user_id")
REQUEST_DOMAINS = {"email": ("exchange", "commerce"), "customer_id": ("commerce",), "user_id": ("exchange",)}
IDENTIFIERS = ("email", "user_id", "customer_id", "order_id", "session_id")
# Silver and gold columns that name a person directly (email_hash and customer_key are derived from the email).
ID_COLUMNS = ("user_id", "customer_id", "order_id", "session_id")
# The layers that hold people's rows; ops holds run accounting and the erasure records themselves.
PERSONAL_LAYERS = ("gold", "silver", "quarantine", "bronze")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Request:
    kind: str  # email | customer_id | user_id
    value: str  # normalised: an email trimmed and lower-cased, an id trimmed

    @property
    def label(self) -> str:
        return f"{self.kind} {self.value}"


def parse_request(kind: str, value: str) -> Request:
    if kind not in REQUEST_KINDS:
        raise InputError(f"unknown identifier '{kind}': use one of {', '.join(REQUEST_KINDS)}")
    cleaned = value.strip()
    if kind == "email":
        cleaned = cleaned.lower()
        if not EMAIL.match(cleaned):
            raise InputError(f"'{value}' is not an email address")
    if not cleaned:
        raise InputError(f"an empty {kind}")
    return Request(kind, cleaned)


def parse_request_file(text: str, name: str) -> list[Request]:
    """Lines `kind,value` (kind: email, customer_id or user_id); blank lines and lines starting with # skipped."""
    requests = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, value = line.partition(",")
        if not sep:
            raise InputError(f"{name}:{number}: expected 'kind,value' (e.g. 'email,ann@example.com'), got '{line}'")
        try:
            requests.append(parse_request(kind.strip(), value))
        except InputError as exc:
            raise InputError(f"{name}:{number}: {exc}") from None
    return requests


def collect_requests(
    emails: Sequence[str], customer_ids: Sequence[str], user_ids: Sequence[str], file_text: str | None, file_name: str
) -> list[Request]:
    requests = [parse_request("email", v) for v in emails]
    requests += [parse_request("customer_id", v) for v in customer_ids]
    requests += [parse_request("user_id", v) for v in user_ids]
    if file_text is not None:
        requests += parse_request_file(file_text, file_name)
    unique = list(dict.fromkeys(requests))
    if not unique:
        raise InputError("name at least one person: --subject-email, --customer-id, --user-id or --file")
    return unique


# ---- keyed hashes ------------------------------------------------------------------------------------------------
def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of the value as silver hashes it (trimmed, lower-cased), as 64 hex digits."""
    return hmac.new(key, value.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()


def suppression_hash(key: bytes, value: str) -> str:
    """An identifier's entry in the suppression list: keyed like silver's hashes but under its own prefix, so that
    the list cannot be joined to any pseudonym silver or gold still holds."""
    return keyed_hash(key, f"suppress:{value}")


def subject_hash(key: bytes, request: Request) -> str:
    """The request's identity in the audit and suppression tables: a keyed hash of kind and value."""
    return keyed_hash(key, f"{request.kind}:{request.value}")


# ---- identities ---------------------------------------------------------------------------------------------------
@dataclass
class Identity:
    """One person within one domain: identifier -> the values found for it."""

    domain: str
    values: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, value: str | None) -> bool:
        if value is None or not value.strip():
            return False
        value = value.strip().lower() if kind == "email" else value.strip()
        known = self.values.setdefault(kind, set())
        if value in known:
            return False
        known.add(value)
        return True

    def get(self, kind: str) -> list[str]:
        return sorted(self.values.get(kind, ()))

    def tokens(self) -> list[str]:
        """What a raw line naming this person contains: emails, ids, and order references without their platform."""
        refs = [v.split(":", 1)[1] for v in self.get("order_id") if ":" in v]
        return sorted({*(v for k in IDENTIFIERS for v in self.get(k)), *refs})

    def derived(self, key: bytes) -> dict[str, list[str]]:
        """The person's values of silver's and gold's derived columns: email_hash and customer_key."""
        hashes = sorted({keyed_hash(key, e) for e in self.get("email")})
        keys = [f"email:{h}" for h in hashes] + [f"id:{c}" for c in self.get("customer_id")]
        return {"email_hash": hashes, "customer_key": sorted(keys)}


@dataclass
class Subject:
    request: Request
    identities: dict[str, Identity]  # domain -> identity


def identifier_exprs(privacy: Mapping[str, object]) -> dict[str, dict[str, dict[str, str]]]:
    """privacy.erasure.identifiers: domain -> bronze entity -> identifier -> SQL expression, checked."""
    erasure = privacy.get("erasure") or {}
    raw = erasure.get("identifiers") if isinstance(erasure, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("privacy.erasure.identifiers in conf/base.yaml must map domain -> entity -> identifier")
    out: dict[str, dict[str, dict[str, str]]] = {}
    for domain, entities in raw.items():
        for entity, kinds in dict(entities or {}).items():
            for kind, expr in dict(kinds or {}).items():
                if kind not in IDENTIFIERS:
                    where = f"privacy.erasure.identifiers.{domain}.{entity}"
                    raise ConfigError(f"{where}: unknown identifier '{kind}' (use {', '.join(IDENTIFIERS)})")
                out.setdefault(str(domain), {}).setdefault(str(entity), {})[str(kind)] = str(expr)
    return out


def normalised(expr: str, kind: str) -> Column:
    value = F.trim(F.expr(expr))
    return F.lower(value) if kind == "email" else value


def layer_tables(spark: SparkSession, locations: Mapping[str, str]) -> dict[str, TableRef]:
    """Every Delta table under the given layers' locations, by layer.name."""
    present = {layer: loc for layer, loc in locations.items() if fs.exists(spark, loc)}
    return {t.qualified: t for t in find_tables(spark, present)}


def resolve(
    spark: SparkSession,
    tables: Mapping[str, TableRef],
    exprs: Mapping[str, Mapping[str, Mapping[str, str]]],
    requests: Sequence[Request],
) -> list[Subject]:
    """Each request's identities, followed through bronze to a fixed point. One scan per bronze table and round for
    all requests together; a row joins every subject one of whose values it carries."""
    subjects = []
    for request in requests:
        identities = {}
        for domain in REQUEST_DOMAINS[request.kind]:
            identity = Identity(domain)
            identity.add(request.kind, request.value)
            identities[domain] = identity
        subjects.append(Subject(request, identities))
    for _ in range(6):  # email -> customer -> orders -> sessions: a few rounds reach the fixed point
        grown = False
        for domain, entities in exprs.items():
            people = [s.identities[domain] for s in subjects if domain in s.identities]
            for entity, kinds in entities.items():
                ref = tables.get(f"bronze.{domain}_{entity}")
                if ref is None or not people:
                    continue
                columns = read_delta(spark, ref.path).columns
                usable = {k: e for k, e in kinds.items() if references_exist(e, columns)}
                condition = _any_of(
                    normalised(e, k).isin(vals) for k, e in usable.items() if (vals := _union(people, k))
                )
                if condition is None:
                    continue
                found = (
                    read_delta(spark, ref.path)
                    .where(condition)
                    .select(*[normalised(e, k).alias(k) for k, e in usable.items()])
                    .distinct()
                    .collect()
                )
                for row in found:
                    for person in people:
                        if any(row[k] is not None and row[k] in person.values.get(k, ()) for k in usable):
                            grown = any([person.add(k, row[k]) for k in usable]) or grown
        if not grown:
            break
    return subjects


def references_exist(expr: str, columns: Sequence[str]) -> bool:
    """Whether the expression's column references are all in the table (a bronze table created before a column
    joined its contract lacks it); function names and quoted literals are not references."""
    bare = re.sub(r"'[^']*'", "", expr)
    names = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", bare))
    return names <= set(columns)


def _union(people: Iterable[Identity], kind: str) -> list[str]:
    return sorted({v for p in people for v in p.values.get(kind, ())})


def _any_of(conditions: Iterable[Column]) -> Column | None:
    items = list(conditions)
    return reduce(or_, items) if items else None


# ---- a person's rows in any table --------------------------------------------------------------------------------
def token_pattern(tokens: Sequence[str]) -> str | None:
    """A Java regular expression matching any of the tokens as a whole word of a raw line (case-insensitive): not
    inside a longer id, email or number."""
    if not tokens:
        return None
    alternatives = "|".join(r"\Q" + t.replace(r"\E", r"\E\\E\Q") + r"\E" for t in sorted(tokens, key=len, reverse=True))
    return rf"(?i)(?<![A-Za-z0-9._%+@-])(?:{alternatives})(?![A-Za-z0-9_%+@]|[.-][A-Za-z0-9])"


def table_domain(ref: TableRef, columns: Sequence[str], domains: Iterable[str]) -> str:
    """The domain whose people a table holds: its name's prefix (exchange_..., commerce_..., trends_...; a
    quarantine table is named after its domain), else exchange for a table keyed by user_id (the churn model's
    tables) and commerce for the rest (the regret model's)."""
    for domain in domains:
        if ref.name == domain or ref.name.startswith(f"{domain}_"):
            return domain
    return "exchange" if "user_id" in columns else "commerce"


def row_condition(
    ref: TableRef,
    columns: Sequence[str],
    identity: Identity,
    key: bytes,
    exprs: Mapping[str, Mapping[str, Mapping[str, str]]],
) -> Column | None:
    """The condition that picks the person's rows out of this table (None: the table cannot hold them)."""
    parts: list[Column] = []
    pattern = token_pattern(identity.tokens())
    if ref.layer == "bronze":
        entity = ref.name.removeprefix(f"{identity.domain}_")
        for kind, expr in exprs.get(identity.domain, {}).get(entity, {}).items():
            if identity.get(kind) and references_exist(expr, columns):
                parts.append(F.coalesce(normalised(expr, kind).isin(identity.get(kind)), F.lit(False)))
        raw = [c for c in ("_raw_record", "_rescued_data") if c in columns]
    elif ref.layer == "quarantine":
        raw = [c for c in ("record",) if c in columns]
    else:
        derived = identity.derived(key)
        for column in columns:
            values = identity.get(column) if column in ID_COLUMNS else derived.get(column, [])
            if values:
                parts.append(F.coalesce(F.col(f"`{column}`").isin(values), F.lit(False)))
        raw = []
    if pattern:
        parts += [F.coalesce(F.col(c).rlike(pattern), F.lit(False)) for c in raw]
    return _any_of(parts)


def conditions_by_table(
    spark: SparkSession,
    tables: Mapping[str, TableRef],
    subjects: Sequence[Subject],
    key: bytes,
    exprs: Mapping[str, Mapping[str, Mapping[str, str]]],
    domains: Sequence[str],
) -> dict[str, tuple[TableRef, list[Column | None]]]:
    """layer.table -> (table, one condition per subject, None where the subject cannot be in it), for the tables
    of the personal layers that can hold any of the subjects."""
    out = {}
    for name, ref in tables.items():
        if ref.layer not in PERSONAL_LAYERS:
            continue
        columns = read_delta(spark, ref.path).columns
        domain = table_domain(ref, columns, domains)
        per_subject = []
        for subject in subjects:
            identity = subject.identities.get(domain)
            per_subject.append(row_condition(ref, columns, identity, key, exprs) if identity else None)
        if any(c is not None for c in per_subject):
            out[name] = (ref, per_subject)
    return out


def layer_order(name: str) -> tuple[int, str]:
    """Derived layers first: gold, silver, quarantine, then bronze (which an interrupted run resolves from again)."""
    return (PERSONAL_LAYERS.index(name.split(".", 1)[0]), name)
