"""Realistic-looking people and places (names, e-mails, phones, addresses) from deterministic draws."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from marketlake.generator.rand import Rng, element

FIRST_NAMES = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Mateo",
    "Sofia",
    "Lucas",
    "Mia",
    "Elijah",
    "Amara",
    "Kenji",
    "Priya",
    "Omar",
    "Chloe",
    "Diego",
    "Hannah",
    "Yusuf",
    "Ines",
    "Jonas",
    "Leila",
    "Ravi",
    "Zoe",
    "Tomasz",
    "Aisha",
    "Felix",
    "Maya",
    "Hugo",
    "Nora",
    "Samuel",
]
LAST_NAMES = [
    "Smith",
    "Garcia",
    "Müller",
    "Kim",
    "Okafor",
    "Rossi",
    "Nguyen",
    "Silva",
    "Khan",
    "Novak",
    "Johnson",
    "Brown",
    "Tanaka",
    "Haddad",
    "Martin",
    "Larsen",
    "Ivanova",
    "Patel",
    "Dubois",
    "Cohen",
    "Walker",
    "Moreau",
    "Fischer",
    "Santos",
    "Ahmed",
    "Kowalski",
    "Andersen",
    "Lopez",
    "Chen",
    "Ali",
]
EMAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "example.org"]
COUNTRIES = [
    ("US", 0.34),
    ("GB", 0.12),
    ("DE", 0.1),
    ("FR", 0.07),
    ("BR", 0.07),
    ("IN", 0.08),
    ("JP", 0.05),
    ("NG", 0.04),
    ("CA", 0.05),
    ("AU", 0.04),
    ("ES", 0.04),
]
CITIES = {
    "US": "Austin",
    "GB": "Leeds",
    "DE": "Hamburg",
    "FR": "Lyon",
    "BR": "Recife",
    "IN": "Pune",
    "JP": "Osaka",
    "NG": "Lagos",
    "CA": "Calgary",
    "AU": "Perth",
    "ES": "Valencia",
}
STREETS = [
    "Main St",
    "Oak Avenue",
    "Station Road",
    "Hauptstraße",
    "Rue de la Paix",
    "Market Lane",
    "Elm Street",
    "Harbour View",
    "Sakura-dori",
    "Calle Mayor",
]


class Person:
    """Columns describing one person keyed by `key` (a stable id column)."""

    def __init__(self, rng: Rng, key: Column, prefix: str) -> None:
        self.rng, self.key, self.prefix = rng, key, prefix

    def _u(self, what: str) -> Column:
        return self.rng.uniform(f"{self.prefix}:{what}", self.key)

    @property
    def first_name(self) -> Column:
        return element(FIRST_NAMES, F.floor(self._u("first") * len(FIRST_NAMES)))

    @property
    def last_name(self) -> Column:
        return element(LAST_NAMES, F.floor(self._u("last") * len(LAST_NAMES)))

    @property
    def email(self) -> Column:
        local = F.lower(F.concat(self.first_name, F.lit("."), F.regexp_replace(self.last_name, "ü", "ue")))
        domain = element(EMAIL_DOMAINS, F.floor(self._u("domain") * len(EMAIL_DOMAINS)))
        return F.concat(local, F.pmod(F.xxhash64(self.key), F.lit(9973)).cast("string"), F.lit("@"), domain)

    @property
    def phone(self) -> Column:
        digits = F.lpad(F.floor(self._u("phone") * 10_000_000).cast("long").cast("string"), 7, "0")
        return F.concat(F.lit("+1-555-"), F.substring(digits, 1, 3), F.lit("-"), F.substring(digits, 4, 4))

    @property
    def country(self) -> Column:
        return self.rng.choice(f"{self.prefix}:country", COUNTRIES, self.key)

    @property
    def address_line(self) -> Column:
        number = (F.floor(self._u("house") * 250) + 1).cast("string")
        return F.concat(number, F.lit(" "), element(STREETS, F.floor(self._u("street") * len(STREETS))))

    @property
    def postcode(self) -> Column:
        return F.lpad(F.floor(self._u("zip") * 99_999).cast("long").cast("string"), 5, "0")

    def city(self, country: Column) -> Column:
        pairs = [x for k, v in CITIES.items() for x in (F.lit(k), F.lit(v))]
        return F.create_map(*pairs)[country]
