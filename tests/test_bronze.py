"""Bronze parsing: every line becomes one row; bad lines keep their text and a reason; drift is rescued."""

from __future__ import annotations

from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from marketlake.bronze import check_csv_header, csv_header, parse_csv, parse_jsonl, read_lines
from marketlake.config import SourceSpec
from marketlake.errors import InputError

TRADES = SourceSpec(
    domain="exchange",
    entity="trades",
    format="jsonl",
    columns=("trade_id", "price", "quantity"),
    key=("trade_id",),
    required=("trade_id",),
    numeric=("price",),
    positive=(),
    references={},
    event_time="trade_id",
)
SESSIONS = SourceSpec(
    domain="commerce",
    entity="web_sessions",
    format="csv",
    columns=("session_id", "channel", "pages"),
    key=("session_id",),
    required=("session_id",),
    numeric=(),
    positive=(),
    references={},
    event_time="session_id",
)
PARSED = "_line_no long, _parse_error string, {cols}, _rescued_data string, _raw_record string"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return f"file:{path}"


def test_read_lines_numbers_every_line_and_keeps_blank_ones(spark: SparkSession, tmp_path: Path) -> None:
    f = _write(tmp_path / "a.jsonl", "one\r\n\nthree\n")
    actual = read_lines(spark, [f]).select("_line_no", "line")
    expected = spark.createDataFrame([(1, "one"), (2, ""), (3, "three")], "_line_no long, line string")
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_parse_jsonl_keeps_bad_lines_and_rescues_new_fields(spark: SparkSession, tmp_path: Path) -> None:
    lines = [
        '{"trade_id":"T1","price":"10.50","quantity":2}',
        '{"trade_id":"T2","price":12345678901.12345678,"quantity":1,"liquidity":"maker"}',
        '{"trade_id":"T3","price":"N/A"}',
        '{"trade_id":"T4","pri',
        "",
        "ERROR 502: upstream timeout",
        "[1, 2]",
    ]
    f = _write(tmp_path / "t.jsonl", "\n".join(lines) + "\n")
    actual = parse_jsonl(read_lines(spark, [f]), TRADES).drop("_source_file", "_source_size")
    expected = spark.createDataFrame(
        [
            (1, None, "T1", "10.50", "2", None, lines[0]),
            (2, None, "T2", "1.2345678901123457E10", "1", '{"liquidity":"maker"}', lines[1]),
            (3, None, "T3", "N/A", None, None, lines[2]),
            (4, "malformed_json", None, None, None, None, lines[3]),
            (5, "blank_line", None, None, None, None, ""),
            (6, "malformed_json", None, None, None, None, lines[5]),
            (7, "malformed_json", None, None, None, None, lines[6]),
        ],
        PARSED.format(cols="trade_id string, price string, quantity string"),
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_csv_headers_may_hold_dots_and_spaces(spark: SparkSession, tmp_path: Path) -> None:
    f = _write(tmp_path / "d.csv", "session_id,customer.email,page views\nS1,a@x.org,3\n")
    headers = {f: csv_header("session_id,customer.email,page views")}
    row = parse_csv(read_lines(spark, [f]), SESSIONS, headers).select("session_id", "_rescued_data").first()
    assert row.asDict() == {"session_id": "S1", "_rescued_data": '{"customer.email":"a@x.org","page views":"3"}'}


def test_unusable_csv_headers_are_refused() -> None:
    check_csv_header("ok.csv", ["a", "b"])
    for header in ([], [""], ["a", "a"], ["a", ""], ["a`b"]):
        with pytest.raises(InputError, match="the first line must be a header of distinct column names"):
            check_csv_header("bad.csv", header)


def test_parse_csv_uses_each_files_header(spark: SparkSession, tmp_path: Path) -> None:
    before = _write(tmp_path / "d1.csv", 'session_id,channel,pages\nS1,email,3\nS2,social\n\nS3,"paid, search",1\n')
    after = _write(tmp_path / "d2.csv", "session_id,channel,pages,utm_campaign\nS4,direct,2,spring\nS5,direct,2\n")
    files = [before, after]
    headers = {f: csv_header(Path(f[5:]).read_text().splitlines()[0]) for f in files}
    actual = (
        parse_csv(read_lines(spark, files), SESSIONS, headers)
        .withColumn("_file", F.regexp_extract("_source_file", r"(d\d)\.csv$", 1))
        .drop("_source_file", "_source_size")
        .orderBy("_file", "_line_no")
        .drop("_file")
    )
    expected = spark.createDataFrame(
        [
            (2, None, "S1", "email", "3", None, "S1,email,3"),
            (3, "csv_field_count", None, None, None, None, "S2,social"),
            (4, "blank_line", None, None, None, None, ""),
            (5, None, "S3", "paid, search", "1", None, 'S3,"paid, search",1'),
            (2, None, "S4", "direct", "2", '{"utm_campaign":"spring"}', "S4,direct,2,spring"),
            (3, "csv_field_count", None, None, None, None, "S5,direct,2"),
        ],
        PARSED.format(cols="session_id string, channel string, pages string"),
    )
    assert_df_equality(actual, expected, ignore_nullable=True)
