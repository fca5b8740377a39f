"""Which columns hold personal data, judged by their values and names (DOMAIN.md "Privacy": restricted data).

Value detectors, each on a trimmed value:
  email    an address anywhere in the text
  phone    +country code then 7-15 digits in groups ("+1-555-010-0199", "+44 (0)20 7946 0958"), or a national
           number in three groups ("(555) 123-4567", "020 7946 0958"); never a plain number (an id, an amount, an
           epoch), a date, an IP or a dotted thousands figure
  card     13-19 digits, plain or in 4-digit groups (4-6-5 for Amex), Luhn-valid and not one digit repeated
  iban     two letters, two check digits, 11-30 letters or digits (spaces allowed), valid by ISO 7064 mod 97-10
  ip       an IPv4 or IPv6 address
  address  a house number and a street ("12 Main St", "3 Rue de la Paix", "Hauptstraße 5", "2 Sakura-dori")
A value holding a JSON object or array is also judged leaf by leaf: platform payloads carry PII inside objects.

A column looks like a kind when at least `threshold` of its non-blank sampled values match that detector; failing
every detector, its name decides (`first_name`, `buyer_phone`, `ShippingAddress`, `ip_address`: the name must end
with the hint, so `phone_verified` is not one), which is how people's names are found.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

# Value detectors, in the order a tie between two of them is reported.
DETECTORS = ("email", "phone", "card", "iban", "ip", "address")
# What each kind of PII is called in messages; the kinds beyond DETECTORS are found by column name only.
DESCRIPTIONS = {
    "email": "email addresses",
    "phone": "phone numbers",
    "card": "payment card numbers",
    "iban": "IBANs",
    "ip": "IP addresses",
    "address": "street addresses",
    "name": "people's names",
    "national_id": "national ids",
    "credential": "credentials",
}

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,}"
)
_PHONE_INTERNATIONAL = re.compile(r"\+[1-9]\d{0,3}(?:[ .\-]?(?:\(\d{1,5}\)|\d{1,6})){1,7}")
_PHONE_NATIONAL = re.compile(r"(?:\(0?\d{2,5}\)|0?\d{2,5})[ .\-]\d{3,4}[ .\-]?\d{3,5}")
_DECIMAL = re.compile(r"[+-]?\d+\.\d+")
_DOTTED_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+")
_CARD = re.compile(r"\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}")
_IBAN_TEXT = re.compile(r"[A-Za-z]{2}\d{2}[A-Za-z0-9 ]{11,40}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")

_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|terrace|close|crescent|"
    "square|sq|parkway|pkwy|highway|hwy|view|row|hill|gardens|walk|mews|grove|circle|alley|trail|quay|wharf"
)
_STREET_FIRST = "rue|calle|via|viale|rua|avenida|avenue|carrer|plaza|piazza|boulevard|chemin|route|strada|ulica"
_STREET_ENDINGS = "straße|strasse|str\\.|weg|allee|platz|gasse|dori|dōri|gatan|gade|vej|straat|plein|laan"
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
_WORD = r"[^\W\d_][\w'.\-]*"
_COMPOUND = rf"[^\W\d_][\w'\-]*?(?:{_STREET_ENDINGS})"
_ADDRESS = re.compile(
    rf"(?:{_HOUSE},?\s+(?:(?:{_WORD}\s+){{1,4}}(?:{_STREET_TYPES})\.?"
    rf"|(?:{_STREET_FIRST})(?:\s+{_WORD}){{1,5}}"
    rf"|(?:{_WORD}\s+){{0,3}}{_COMPOUND})"
    rf"|(?:{_WORD}\s+){{0,3}}(?:{_COMPOUND}|{_WORD}\s+(?:{_STREET_TYPES})\.?),?\s+{_HOUSE})"
    r"(?:,.*)?",
    re.IGNORECASE,
)

# Column names that say what a column holds: a name is a hint when its words end with one of these.
NAME_HINTS: Mapping[tuple[str, ...], str] = {
    **{(w,): "email" for w in ("email", "emailaddress")},
    ("e", "mail"): "email",
    ("email", "address"): "email",
    **{(w,): "phone" for w in ("phone", "phonenumber", "mobile", "telephone", "tel", "msisdn", "fax")},
    **{(w, n): "phone" for w in ("phone", "mobile", "telephone") for n in ("number", "no")},
    **{(w,): "ip" for w in ("ip", "ipv", "ipaddress")},
    **{("ip", w): "ip" for w in ("address", "addr")},
    ("remote", "addr"): "ip",
    **{(w,): "address" for w in ("address", "addr", "street", "postcode", "postalcode", "zip", "zipcode")},
    ("address", "line"): "address",
    ("postal", "code"): "address",
    ("zip", "code"): "address",
    **{(w,): "name" for w in ("surname", "firstname", "lastname", "fullname", "forename")},
    **{
        (w, "name"): "name"
        for w in ("first", "last", "full", "given", "family", "middle", "customer", "buyer", "contact", "recipient")
    },
    **{(w,): "card" for w in ("cardnumber", "pan")},
    **{("card", w): "card" for w in ("number", "no")},
    ("credit", "card"): "card",
    ("iban",): "iban",
    ("account", "number"): "iban",
    **{(w,): "national_id" for w in ("ssn", "nino", "passport")},
    **{(w, "id"): "national_id" for w in ("national", "tax")},
    ("social", "security", "number"): "national_id",
    **{(w,): "credential" for w in ("password", "passwd", "secret")},
    ("api", "key"): "credential",
    ("access", "token"): "credential",
}


def luhn_valid(digits: str) -> bool:
    """The Luhn check every payment card number passes (its last digit is the check digit)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """ISO 13616's check: the first four characters moved to the end, letters as 10..35, the number mod 97 is 1."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def is_email(value: str) -> bool:
    return _EMAIL.search(value) is not None


def is_phone(value: str) -> bool:
    if not (_PHONE_INTERNATIONAL.fullmatch(value) or _PHONE_NATIONAL.fullmatch(value)):
        return False
    if _DECIMAL.fullmatch(value) or _DOTTED_THOUSANDS.fullmatch(value):
        return False
    return 7 <= sum(c.isdigit() for c in value) <= 15


def is_card(value: str) -> bool:
    if not _CARD.fullmatch(value):
        return False
    digits = re.sub(r"\D", "", value)
    return len(set(digits)) > 1 and luhn_valid(digits)


def is_iban(value: str) -> bool:
    if not _IBAN_TEXT.fullmatch(value):
        return False
    compact = value.replace(" ", "").upper()
    return _IBAN.fullmatch(compact) is not None and iban_valid(compact)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_address(value: str) -> bool:
    return _ADDRESS.fullmatch(value) is not None


CHECKS = {
    "email": is_email,
    "phone": is_phone,
    "card": is_card,
    "iban": is_iban,
    "ip": is_ip,
    "address": is_address,
}


def json_leaves(value: str) -> list[str]:
    """The string (and integer) leaves of a value holding a JSON object or array; [] for any other value."""
    if not value.startswith(("{", "[")):
        return []
    try:
        stack = [json.loads(value)]
    except ValueError:
        return []
    leaves: list[str] = []
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            leaves.append(item.strip())
        elif isinstance(item, int) and not isinstance(item, bool):
            leaves.append(str(item))
    return leaves


def kinds_of(value: str, detectors: Sequence[str] = DETECTORS) -> set[str]:
    """The detectors a (trimmed, non-blank) value matches, itself or through one of its JSON leaves."""
    candidates = [value, *json_leaves(value)]
    return {kind for kind in detectors if any(CHECKS[kind](v) for v in candidates)}


def name_words(name: str) -> tuple[str, ...]:
    """A column name as lower-case words: snake_case, camelCase and digits split ("AddressLine1" -> address, line)."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name))
    return tuple(w for w in re.split(r"[^a-z]+", spaced.lower()) if w)


def name_kind(name: str) -> str | None:
    """The kind of PII a column's name says it holds (the longest hint its words end with), or None."""
    words = name_words(name)
    for size in range(min(len(words), 3), 0, -1):
        kind = NAME_HINTS.get(words[-size:])
        if kind:
            return kind
    return None


@dataclass(frozen=True)
class ColumnClass:
    """What one column's sampled values look like."""

    column: str
    rescued: bool  # outside the source contract: a key of _rescued_data
    sampled: int  # non-blank values sampled
    matches: Mapping[str, int] = field(default_factory=dict)  # detector -> values it matched
    kinds: tuple[str, ...] = ()  # the PII the column is taken for, most matched first; () when none
    by_name: bool = False  # taken for PII by its name, no detector having reached the threshold

    @property
    def flagged(self) -> bool:
        return bool(self.kinds)

    def looks_like(self) -> str:
        """What the column looks like, with the evidence: 'phone numbers (3 of 4 sampled values, 75%)'."""
        if self.by_name:
            return f"{DESCRIPTIONS[self.kinds[0]]} (by its name)"
        n = self.sampled
        return ", ".join(
            f"{DESCRIPTIONS[k]} ({self.matches[k]} of {n} sampled values, {self.matches[k] / n:.0%})"
            for k in self.kinds
        )

    def detected(self) -> str:
        """A short form for tables: 'phone 100% of 4', 'name (by name)'."""
        if self.by_name:
            return f"{self.kinds[0]} (by name)"
        return ", ".join(f"{k} {self.matches[k] / self.sampled:.0%} of {self.sampled}" for k in self.kinds)


def classify_column(
    column: str,
    values: Iterable[str | None],
    threshold: float,
    detectors: Sequence[str] = DETECTORS,
    names: bool = True,
    rescued: bool = False,
) -> ColumnClass:
    """Classify one column from its sampled values (nulls and blanks are not counted)."""
    present = [v.strip() for v in values if v is not None and v.strip()]
    matches = Counter(kind for v in present for kind in kinds_of(v, detectors))
    order = {k: i for i, k in enumerate(DETECTORS)}
    kinds = tuple(
        sorted((k for k, n in matches.items() if n >= threshold * len(present)), key=lambda k: (-matches[k], order[k]))
    )
    by_name = False
    if not kinds and names and present:
        hint = name_kind(column)
        if hint:
            kinds, by_name = (hint,), True
    return ColumnClass(column, rescued, len(present), dict(matches), kinds, by_name)


def classify_sample(
    columns: Sequence[str],
    rows: Sequence[Sequence[str | None]],
    rescued: Sequence[str],
    threshold: float,
    detectors: Sequence[str] = DETECTORS,
    names: bool = True,
) -> list[ColumnClass]:
    """Every contract column (rows hold their values in `columns` order), then every key found in the sampled
    `_rescued_data` objects (JSON), by name."""
    classes = [classify_column(c, [r[i] for r in rows], threshold, detectors, names) for i, c in enumerate(columns)]
    extra: dict[str, list[str | None]] = {}
    for text in rescued:
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        for key, value in record.items():
            if value is not None and not isinstance(value, str):
                value = json.dumps(value)
            extra.setdefault(str(key), []).append(value)
    classes += [classify_column(k, extra[k], threshold, detectors, names, rescued=True) for k in sorted(extra)]
    return classes
