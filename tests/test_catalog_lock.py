"""A job refuses, in one line and before starting Spark, a lakehouse whose embedded metastore another process
holds; a lock file left behind by a process that ended does not count. The holder here is a plain process taking
the same POSIX lock Derby takes on dbex.lck while it has the database booted."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketlake.config import Settings, load_settings
from marketlake.errors import CatalogBusy
from marketlake.session import SERVING_FILE, check_catalog_free

HOLD = """
import fcntl, sys, time
handle = open(sys.argv[1], "rb+")
fcntl.lockf(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MARKETLAKE_LAKEHOUSE", str(tmp_path / "lh"))
    settings = load_settings("local")
    (settings.metastore_dir / "metastore_db").mkdir(parents=True)
    (settings.metastore_dir / "metastore_db" / "dbex.lck").write_bytes(b"")
    return settings


@pytest.fixture
def holder(lake: Settings) -> Iterator[subprocess.Popen]:
    lock = lake.metastore_dir / "metastore_db" / "dbex.lck"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "2"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_lock_file_nobody_holds_does_not_count(lake: Settings) -> None:
    check_catalog_free(lake, wait_seconds=0)


def test_a_held_catalog_fails_in_one_line_naming_the_fixes(lake: Settings, holder: subprocess.Popen) -> None:
    started = time.monotonic()
    with pytest.raises(CatalogBusy) as caught:
        check_catalog_free(lake, wait_seconds=0.5)
    assert time.monotonic() - started >= 0.5  # a job that just ended gets time to let go
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"the catalog of {lake.lakehouse_root} is open in another")
    assert "MARKETLAKE_LAKEHOUSE" in message and "make metastore-server" in message


def test_the_endpoint_is_named_at_once(lake: Settings, holder: subprocess.Popen) -> None:
    url = "jdbc:hive2://127.0.0.1:10000/default;auth=noSasl"
    (lake.metastore_dir / SERVING_FILE).write_text(json.dumps({"pid": holder.pid, "url": url}))
    started = time.monotonic()
    with pytest.raises(CatalogBusy, match=rf"SQL endpoint \(jobs/serve.py, pid {holder.pid}\) at {url}"):
        check_catalog_free(lake, wait_seconds=30)
    assert time.monotonic() - started < 5


def test_a_job_that_is_ending_is_waited_for(lake: Settings) -> None:
    lock = lake.metastore_dir / "metastore_db" / "dbex.lck"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "1"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    check_catalog_free(lake, wait_seconds=20)  # returns once the holder ends
    assert proc.wait(timeout=5) == 0


def test_a_shared_metastore_database_is_never_checked(lake: Settings, holder: subprocess.Popen) -> None:
    conf = {**lake.spark.conf, "spark.hadoop.javax.jdo.option.ConnectionURL": "jdbc:postgresql://db/hive"}
    shared = dataclasses.replace(lake, spark=dataclasses.replace(lake.spark, conf=conf))
    check_catalog_free(shared, wait_seconds=0)
    server = dataclasses.replace(lake, metastore_server="jdbc:derby://127.0.0.1:1527/marketlake;create=true")
    check_catalog_free(server, wait_seconds=0)
