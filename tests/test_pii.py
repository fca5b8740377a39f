"""PII found before it lands (issue 15): detectors judged on hand-made values, the generated data's bronze tables
holding no PII that conf does not declare, and a user's export with an undeclared phone column, which ingestion
warns of and silver refuses (writing nothing of the table) until conf declares it, after which no silver file holds
the raw phones."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import SparkSession

from marketlake.config import Settings
from marketlake.errors import ConfigError
from marketlake.privacy.classify import (
    ColumnClass,
    classify_column,
    classify_sample,
    is_address,
    is_card,
    is_email,
    is_iban,
    is_ip,
    is_phone,
    name_kind,
)
from marketlake.privacy.detection import load_pii_policy, pii_policy, take_sample
from marketlake.silver.spec import load_table_specs
from tests.conftest import JobRunners, WarmJobs, delta_tables

# ---- (a) detectors on hand-made values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "+1-555-010-0199",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+4915112345678",
        "+33 1 42 68 53 00",
        "(555) 123-4567",
        "555.123.4567",
        "020 7946 0958",
    ],
)
def test_phone_numbers_with_a_country_code_or_separators_are_phones(value: str) -> None:
    assert is_phone(value)


@pytest.mark.parametrize(
    "value",
    [
        "65000.00",  # a price
        "+12345678.90",  # a signed amount
        "12.345.678",  # a figure with dotted thousands
        "1234567",  # a quantity or an id: a plain number says nothing
        "4500001234567",  # a Shopify order id
        "0012345678",  # a zero-padded id
        "123-4567890-1234567",  # an Amazon order id (17 digits)
        "2026-03-01",  # a date
        "2026-03-01 10:00:00",  # a timestamp
        "1772323200",  # an epoch
        "192.168.100.100",  # an IP address
        "123-45-6789",  # a US social security number: not a phone
        "555-1234",  # too short to tell from an id
        "+100",
        "SKU-12345-678",
    ],
)
def test_amounts_ids_and_timestamps_are_not_phones(value: str) -> None:
    assert not is_phone(value)


@pytest.mark.parametrize(
    ("value", "card"),
    [
        ("4111 1111 1111 1111", True),  # Visa's test number
        ("4111-1111-1111-1111", True),
        ("4111111111111111", True),
        ("5500 0000 0000 0004", True),  # Mastercard's
        ("3782 822463 10005", True),  # American Express's, grouped 4-6-5
        ("4222222222222", True),  # 13 digits
        ("4111 1111 1111 1112", False),  # the check digit is wrong
        ("4111111111111121", False),  # two digits swapped
        ("0000 0000 0000 0000", False),  # passes Luhn, but one digit repeated
        ("4111 1111-1111 1111", False),  # mixed separators
        ("411 1111 1111 11111", False),  # not grouped like a card
        ("411111111111", False),  # 12 digits
        ("4111111111111111111111", False),  # 22 digits
    ],
)
def test_card_numbers_need_13_to_19_digits_in_card_groups_and_a_valid_luhn_digit(value: str, card: bool) -> None:
    assert is_card(value) is card


@pytest.mark.parametrize(
    ("value", "iban"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("GB82WEST12345698765432", True),
        ("gb82 west 1234 5698 7654 32", True),
        ("DE89 3704 0044 0532 0130 00", True),
        ("FR14 2004 1010 0505 0001 3M02 606", True),
        ("GB82 WEST 1234 5698 7654 33", False),  # the check digits do not match
        ("GB28 WEST 1234 5698 7654 32", False),  # check digits swapped
        ("GB82 WEST", False),  # too short
        ("12GB WEST 1234 5698 7654 32", False),
    ],
)
def test_ibans_need_a_valid_mod_97_check(value: str, iban: bool) -> None:
    assert is_iban(value) is iban


@pytest.mark.parametrize(
    ("value", "email", "ip", "address"),
    [
        ("ana.lima@example.org", True, False, False),
        ("write to ana.lima@example.org please", True, False, False),
        ("ana.lima@localhost", False, False, False),
        ("@example.org", False, False, False),
        ("192.168.1.10", False, True, False),
        ("2001:db8::1", False, True, False),
        ("256.1.1.1", False, False, False),
        ("1.2.3", False, False, False),
        ("12 Main St", False, False, True),
        ("45 Oak Avenue, Leeds", False, False, True),
        ("3 Rue de la Paix", False, False, True),
        ("Hauptstraße 5", False, False, True),
        ("2 Sakura-dori", False, False, True),
        ("8 Harbour View", False, False, True),
        ("4 Way Stretch", False, False, False),  # a product, not a street
        ("12 Spring", False, False, False),
        ("Arrived damaged", False, False, False),
        ("/collections/trending", False, False, False),
    ],
)
def test_emails_ips_and_street_addresses(value: str, email: bool, ip: bool, address: bool) -> None:
    assert (is_email(value), is_ip(value), is_address(value)) == (email, ip, address)


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("first_name", "name"),
        ("BuyerName", "name"),
        ("buyer_phone", "phone"),
        ("mobile_number", "phone"),
        ("ShippingAddress", "address"),
        ("AddressLine1", "address"),
        ("postcode", "address"),
        ("ip_address", "ip"),
        ("email_address", "email"),
        ("card_number", "card"),
        ("ssn", "national_id"),
        ("password", "credential"),
        ("phone_verified", None),  # a flag about a phone is not a phone
        ("email_opt_in", None),
        ("name", None),  # products and orders have names too
        ("customer", None),
        ("landing_page", None),
    ],
)
def test_a_name_hints_at_pii_only_when_it_ends_with_the_hint(column: str, kind: str | None) -> None:
    assert name_kind(column) == kind


def test_a_column_is_pii_when_the_threshold_share_of_its_values_match_one_detector() -> None:
    values = ["+1-555-010-0199", "+44 20 7946 0958", "12.50", None, "  "]  # 2 phones of 3 non-blank values
    half = classify_column("contact", values, threshold=0.5)
    assert (half.flagged, half.kinds, half.sampled, half.by_name) == (True, ("phone",), 3, False)
    assert half.looks_like() == "phone numbers (2 of 3 sampled values, 67%)"
    assert not classify_column("contact", values, threshold=0.7).flagged
    assert not classify_column("contact", values, threshold=0.5, detectors=("email",)).flagged


def test_pii_inside_json_values_counts_and_a_name_decides_when_no_detector_does() -> None:
    payload = json.dumps({"id": "C1", "contact": {"phone": "+1-555-010-0199", "email": "a.b@example.org"}})
    blob = classify_column("customer", [payload, payload], threshold=0.5)
    assert (blob.kinds, blob.matches) == (("email", "phone"), {"email": 2, "phone": 2})
    names = classify_column("buyer_name", ["Ana Lima", "Kenji Tanaka"], threshold=0.5)
    assert (names.kinds, names.by_name, names.looks_like()) == (("name",), True, "people's names (by its name)")
    assert not classify_column("buyer_name", ["Ana Lima"], threshold=0.5, names=False).flagged
    assert not classify_column("buyer_name", [None, ""], threshold=0.5).flagged  # nothing to judge
    assert not classify_column("phone_verified", ["true", "false"], threshold=0.5).flagged


def test_rescued_keys_are_classified_beside_the_contract_columns() -> None:
    rows = [("C1", "a@example.org"), ("C2", None)]
    rescued = ['{"buyer_phone":"+44 20 7946 0958","note":"gift"}', '{"buyer_phone":"+1 (415) 555-0134"}']
    classes = classify_sample(["customer_id", "email"], rows, rescued, threshold=0.5)
    found = [(c.column, c.rescued, c.sampled, c.kinds) for c in classes]
    assert found == [
        ("customer_id", False, 2, ()),
        ("email", False, 1, ("email",)),
        ("buyer_phone", True, 2, ("phone",)),
        ("note", True, 1, ()),
    ]


# ---- the declared map ------------------------------------------------------------------------------------------


def test_declared_pii_comes_from_silver_yaml_the_payload_fields_and_conf(settings: Settings) -> None:
    specs = load_table_specs(settings.conf_dir, settings.sources)
    every = [s for domain in specs.values() for s in domain]
    privacy = {"detection": {"declared": {"commerce.customers": {"buyer_phone": "drop", "loyalty_tier": "not_pii"}}}}
    policy = pii_policy(privacy, settings.sources, every)
    assert policy.declared == {
        "exchange.users": {"email": "hash", "phone": "hash", "first_name": "mask", "last_name": "mask"},
        "exchange.logins": {"ip_address": "ip"},
        "commerce.customers": {
            "email": "hash",
            "phone": "hash",
            "first_name": "mask",
            "last_name": "mask",
            "address_line": "hash",
            "postcode": "mask",
            "buyer_phone": "drop",
            "loyalty_tier": "not_pii",
        },
        "commerce.orders_shopify": {
            "customer": "payload",
            "email": "payload",
            "shipping_address": "payload",
            "client_details": "payload",
        },
        "commerce.orders_amazon": {"BuyerEmail": "payload", "BuyerInfo": "payload", "ShippingAddress": "payload"},
    }
    assert policy.hidden_keys([settings.sources["commerce"]["customers"]]) == {"buyer_phone"}
    assert policy.hidden_keys([settings.sources["exchange"]["users"]]) == set()


@pytest.mark.parametrize(
    ("detection", "message"),
    [
        ({"declared": {"commerce.customers": {"city": "drop"}}}, "stores it in clear as silver.commerce_customers"),
        ({"declared": {"commerce.customers": {"buyer_phone": "hide"}}}, "is 'hide'; use one of drop, not_pii"),
        ({"declared": {"commerce.clients": {"buyer_phone": "drop"}}}, "'commerce.clients' is not a source"),
        ({"detectors": ["email", "passport"]}, r"unknown \['passport'\]"),
        ({"threshold": 1.5}, r"threshold in \(0, 1\]"),
    ],
)
def test_a_detection_conf_that_cannot_work_is_one_clear_error(
    settings: Settings, detection: dict[str, object], message: str
) -> None:
    specs = load_table_specs(settings.conf_dir, settings.sources)
    with pytest.raises(ConfigError, match=message):
        pii_policy({"detection": detection}, settings.sources, [s for d in specs.values() for s in d])


def test_the_sample_reaches_rescued_columns_beyond_its_first_rows(spark: SparkSession) -> None:
    rows = [(f"C{i}", None) for i in range(40)] + [("C40", '{"buyer_phone":"+44 20 7946 0958"}')]
    df = spark.createDataFrame(rows, "customer_id string, _rescued_data string").coalesce(1)
    sample = take_sample(df, {"customer_id": "customer_id"}, 5)
    assert (len(sample.rows), sample.rescued) == (5, ['{"buyer_phone":"+44 20 7946 0958"}'])
    assert take_sample(df, {"customer_id": "customer_id"}, 5, rescued=False).rescued == []


# ---- (b) the generated data holds no undeclared PII -------------------------------------------------------------

# What the generator's bronze tables hold, by (table, column): the kinds detected and whether by name alone.
GENERATED_PII = {
    ("exchange_users", "email"): (("email",), False),
    ("exchange_users", "phone"): (("phone",), False),
    ("exchange_users", "first_name"): (("name",), True),
    ("exchange_users", "last_name"): (("name",), True),
    ("exchange_logins", "ip_address"): (("ip",), False),
    ("commerce_customers", "email"): (("email",), False),
    ("commerce_customers", "phone"): (("phone",), False),
    ("commerce_customers", "first_name"): (("name",), True),
    ("commerce_customers", "last_name"): (("name",), True),
    ("commerce_customers", "address_line"): (("address",), False),
    ("commerce_customers", "postcode"): (("address",), True),
    ("commerce_orders_shopify", "customer"): (("email", "phone"), False),
    ("commerce_orders_shopify", "email"): (("email",), False),
    ("commerce_orders_shopify", "shipping_address"): (("phone", "address"), False),
    ("commerce_orders_amazon", "BuyerEmail"): (("email",), False),
    ("commerce_orders_amazon", "ShippingAddress"): (("phone", "address"), False),
}


def test_the_generated_bronze_tables_hold_no_undeclared_pii(
    spark: SparkSession, settings: Settings, pipeline_runs: dict[str, Path]
) -> None:
    policy = load_pii_policy(settings)
    sources = {f"{s.domain}_{s.entity}": s for domain in settings.sources.values() for s in domain.values()}
    tables = delta_tables(pipeline_runs["lh-2"], "bronze")
    assert set(tables) == set(sources)

    def classify(name: str) -> list[ColumnClass]:
        return policy.classify_frame(spark.read.format("delta").load(tables[name]), sources[name])

    with ThreadPoolExecutor(max_workers=4) as pool:  # small jobs: their latency, not the cores, is what they cost
        classified = dict(zip(tables, pool.map(classify, tables), strict=True))
    detected, undeclared = {}, []
    for name, classes in classified.items():
        detected.update({(name, c.column): (c.kinds, c.by_name) for c in classes if c.flagged})
        undeclared += [(name, c.column) for c in policy.undeclared(sources[name], classes)]
    assert detected == GENERATED_PII
    assert undeclared == []


# ---- (c) a user's export with an undeclared phone column --------------------------------------------------------

HEADER = (
    "customer_id,email,phone,first_name,last_name,address_line,city,postcode,country,marketing_opt_in,created_at,"
    "updated_at,buyer_phone"
)
BUYER_PHONES = ["+44 20 7946 0958", "+1 (415) 555-0134", "+49 30 901820", "+33 1 42 68 53 00"]
# customer_id, email, first_name, last_name, address_line, city, postcode, country; then the CSV's buyer_phone field
PEOPLE = [
    ("C9000001", "ana.lima@example.org", "Ana", "Lima", "12 Main St", "Leeds", "LS1 4AP", "GB"),
    ("C9000002", "kenji.t@example.org", "Kenji", "Tanaka", "45 Oak Avenue", "Austin", "73301", "US"),
    ("C9000003", "ines.d@example.org", "Ines", "Dubois", "Hauptstraße 5", "Hamburg", "20095", "DE"),
    ("C9000004", "omar.k@example.org", "Omar", "Khan", "3 Rue de la Paix", "Lyon", "69001", "FR"),
    ("C9000005", "zoe.c@example.org", "Zoe", "Chen", "9 Elm Street", "Perth", "6000", "AU"),
]
BUYER_PHONE_FIELDS = [BUYER_PHONES[0], f'"{BUYER_PHONES[1]}"', *BUYER_PHONES[2:], "n/a"]


def export_csv() -> str:
    """The export: the contract's columns (phones, opt-ins and times filled in) and buyer_phone last."""
    lines = [HEADER]
    for n, ((cid, email, first, last, address, city, postcode, country), buyer) in enumerate(
        zip(PEOPLE, BUYER_PHONE_FIELDS, strict=True), start=1
    ):
        t = "2026-03-01T09:00:00Z"
        lines.append(
            f"{cid},{email},+1-555-010-010{n},{first},{last},{address},{city},{postcode},{country},true,{t},{t},{buyer}"
        )
    return "\n".join(lines) + "\n"


DECLARE = "declare it in conf under privacy.detection.declared, as commerce.customers: {buyer_phone: drop}"
LOOKS_LIKE = (
    "buyer_phone (outside the contract, in _rescued_data) looks like phone numbers (4 of 5 sampled values, 80%)"
)
REFUSED = (
    f"error: silver.commerce_customers not built, nothing of it written: bronze.commerce_customers holds PII that "
    f"conf does not declare: {LOOKS_LIKE}; {DECLARE} (silver never stores it) or not_pii (reviewed: not personal data)"
)
WARNED = (
    f"bronze.commerce_customers: {LOOKS_LIKE}, not declared as PII: silver will not build from this table until it "
    f"is; {DECLARE} (silver never stores it) or not_pii (reviewed: not personal data)"
)


def summary_rows(out: str) -> list[dict[str, str]]:
    """The 'PII: declared vs detected' rows of summary.py --format json."""
    section = out.split("PII: declared vs detected", 1)[1].split("\nSilver tables", 1)[0]
    return [json.loads(line) for line in section.splitlines() if line.startswith("{")]


def customers_pii(buyer_phone: tuple[str, str]) -> list[dict[str, str]]:
    """The side-by-side rows of bronze.commerce_customers holding the export, buyer_phone declared as given."""
    rows = [
        ("email", "contract", "hash", "email 100% of 5"),
        ("phone", "contract", "hash", "phone 100% of 5"),
        ("first_name", "contract", "mask", "name (by name)"),
        ("last_name", "contract", "mask", "name (by name)"),
        ("address_line", "contract", "hash", "address 100% of 5"),
        ("postcode", "contract", "mask", "address (by name)"),
        ("buyer_phone", "rescued", buyer_phone[0], "phone 80% of 5"),
    ]
    return [
        {
            "table": "bronze.commerce_customers",
            "column": column,
            "in": where,
            "declared": declared,
            "detected": detected,
            "status": buyer_phone[1] if column == "buyer_phone" else "ok",
        }
        for column, where, declared, detected in rows
    ]


def file_texts(root: Path) -> str:
    """Every file under root as text, Parquet files by their rows (their pages are compressed)."""
    texts = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        if f.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(f).to_pylist(), default=str, ensure_ascii=False))
        else:
            texts.append(f.read_text(errors="replace"))
    return "\n".join(texts)


@dataclass
class Export:
    lakehouse: Path
    conf: Path
    jobs: WarmJobs
    ingest: subprocess.CompletedProcess
    silver: subprocess.CompletedProcess
    summary: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, warm_jobs: JobRunners, job_conf: Path) -> Iterator[Export]:
    """A fresh lakehouse whose commerce customers come from a user's CSV export with an extra buyer_phone column:
    ingested, silver run (and refused), the summary printed. Its warm job process reads conf from a copy of its own
    at every job, so a test can declare the column there and run silver again in the same process."""
    base = tmp_path_factory.mktemp("pii-export")
    conf, lakehouse, csv = base / "conf", base / "lh", base / "customers.csv"
    shutil.copytree(job_conf, conf)
    csv.write_text(export_csv())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MARKETLAKE_CONF_DIR", str(conf))
        jobs = warm_jobs(lakehouse)  # started now, with this environment
    ingest = jobs("bronze_ingest.py", "--domain", "commerce", "--source", str(csv), "--entity", "customers")
    silver = jobs("silver_build.py", "--domain", "commerce", check=False)
    summary = jobs("summary.py", "--format", "json")
    yield Export(lakehouse, conf, jobs, ingest, silver, summary)
    warm_jobs.release(lakehouse)


def test_an_undeclared_phone_column_in_an_export_is_warned_of_and_refused_by_silver(
    spark: SparkSession, export: Export
) -> None:
    warnings = [line.split(": ", 1)[1] for line in export.ingest.stderr.splitlines() if " WARNING " in line]
    assert [w for w in warnings if "not declared as PII" in w] == [WARNED]

    assert export.silver.returncode == 2
    assert export.silver.stderr.strip().splitlines()[-1] == REFUSED
    assert "Traceback" not in export.silver.stderr
    assert delta_tables(export.lakehouse, "silver") == {}
    assert delta_tables(export.lakehouse, "quarantine") == {}
    ops = export.lakehouse / "ops"
    assert spark.read.format("delta").load(str(ops / "silver_runs")).count() == 0
    assert spark.read.format("delta").load(str(ops / "silver_watermarks")).count() == 0

    assert summary_rows(export.summary.stdout) == customers_pii(("-", "UNDECLARED"))


def test_once_declared_the_export_reaches_silver_without_its_raw_phones(spark: SparkSession, export: Export) -> None:
    local = export.conf / "local.yaml"
    conf = yaml.safe_load(local.read_text())
    conf["privacy"] = {"detection": {"declared": {"commerce.customers": {"buyer_phone": "drop"}}}}
    local.write_text(yaml.safe_dump(conf))

    export.jobs("silver_build.py", "--domain", "commerce")
    silver = spark.read.format("delta").load(str(export.lakehouse / "silver" / "commerce_customers"))
    stored = sorted((r["customer_id"], r["_rescued_data"]) for r in silver.collect())
    assert stored == [(f"C900000{i}", None) for i in range(1, 6)]
    assert "buyer_phone" not in silver.columns
    runs = spark.read.format("delta").load(str(export.lakehouse / "ops" / "silver_runs")).collect()
    assert [(r["silver_table"], r["rows_in"], r["inserted"], r["quarantined"], r["balanced"]) for r in runs] == [
        ("commerce_customers", 5, 5, 0, True)
    ]

    bronze, silver_files = file_texts(export.lakehouse / "bronze"), file_texts(export.lakehouse / "silver")
    assert all(phone in bronze for phone in BUYER_PHONES)  # the raw phones are there to find ...
    assert [phone for phone in BUYER_PHONES if phone in silver_files] == []  # ... and not in silver

    summary = export.jobs("summary.py", "--format", "json")
    assert summary_rows(summary.stdout) == customers_pii(("drop", "ok"))
