"""Erasure and export requests: parsing, the raw-line pattern and the jobs' one-line errors (no Spark needed)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from marketlake.errors import InputError
from marketlake.privacy.subjects import Request, collect_requests, parse_request_file, references_exist, token_pattern


def test_requests_are_normalised_deduplicated_and_read_from_a_file() -> None:
    text = "# requests from the DPO inbox\nemail, Ann@Example.COM \n\ncustomer_id,C00000042\nuser_id,U00000007\n"
    assert parse_request_file(text, "r.csv") == [
        Request("email", "ann@example.com"),
        Request("customer_id", "C00000042"),
        Request("user_id", "U00000007"),
    ]
    both = collect_requests(["ann@example.com"], [], [], text, "r.csv")
    assert [r.label for r in both] == ["email ann@example.com", "customer_id C00000042", "user_id U00000007"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("phone,+1-555-0100", "r.csv:1: unknown identifier 'phone'"),
        ("email,not-an-email", "r.csv:1: 'not-an-email' is not an email address"),
        ("ok\n", "r.csv:1: expected 'kind,value'"),
        ("customer_id,  ", "r.csv:1: an empty customer_id"),
    ],
)
def test_a_bad_request_line_is_named(text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        parse_request_file(text, "r.csv")


def test_the_raw_line_pattern_matches_whole_identifiers_only() -> None:
    # Java and Python agree on these constructs (\Q..\E aside, which Python lacks): check with Python's re.
    pattern = token_pattern(["C00000042", "ann@example.com", "579-7244579-8417244"])
    assert pattern is not None
    python = re.compile(re.sub(r"\\Q(.*?)\\E", lambda m: re.escape(m.group(1)), pattern))
    hits = [
        "C00000042,ann@example.com,+1-555",
        '{"BuyerEmail":"ANN@example.com"}',
        '{"order_ref":"579-7244579-8417244","platform":"amazon"}',
    ]
    misses = [
        "C000000421,x@y.com",
        "xC00000042",
        "joann@example.com",
        "ann@example.com.au",
        "579-7244579-84172440",
        "FE-579-7244579-8417244-received",  # inside a longer id: the record's order_ref column names the order
    ]
    assert [bool(python.search(h)) for h in hits] == [True, True, True]
    assert [bool(python.search(m)) for m in misses] == [False] * len(misses)
    assert token_pattern([]) is None


def test_an_identifier_expression_is_used_only_where_its_columns_exist() -> None:
    expr = "coalesce(get_json_object(customer, '$.email'), email)"
    assert references_exist(expr, ["customer", "email", "id"])
    assert not references_exist(expr, ["email"])


@pytest.mark.parametrize(
    ("job", "args", "message"),
    [
        ("erase.py", [], "error: name at least one person"),
        ("erase.py", ["--subject-email", "nobody"], "error: 'nobody' is not an email address"),
        ("erase.py", ["--file", "/nonexistent/requests.csv"], "error: --file /nonexistent/requests.csv: no such file"),
        ("subject_export.py", ["--out", "x"], "error: name at least one person"),
        (
            "subject_export.py",
            ["--customer-id", "C1", "--user-id", "U1", "--out", "x"],
            "error: an export is for one person",
        ),
    ],
)
def test_a_request_mistake_is_one_line(
    job_in_process: Callable[..., tuple[int, str, str]], job: str, args: list[str], message: str, tmp_path: Path
) -> None:
    code, _, err = job_in_process(job, *args)
    assert code == 2
    assert err.strip().startswith(message) and len(err.strip().splitlines()) == 1, err
