"""Several Spark drivers at once on one lakehouse, through a metastore that is a server (Derby's network server
from Maven Central, started on 127.0.0.1 by the test, as `make metastore-server` does): both jobs run, and each
sees the other's table. The embedded metastore's one-process rule and its one-line refusal are in
test_catalog_lock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, run_job


def test_two_drivers_at_once_share_the_catalog_through_the_server(tmp_path: Path, metastore_server: int) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(os.environ.get("MARKETLAKE_CONF_DIR", REPO / "conf"), conf)
    local = yaml.safe_load((conf / "local.yaml").read_text())
    url = f"jdbc:derby://127.0.0.1:{metastore_server}/marketlake;create=true"
    local["metastore"] = {"kind": "server", "url": url}
    (conf / "local.yaml").write_text(yaml.safe_dump(local))
    lakehouse = tmp_path / "lh"
    env = {**os.environ, "MARKETLAKE_CONF_DIR": str(conf), "MARKETLAKE_LAKEHOUSE": str(lakehouse)}
    # The metastore's schema is created once, by the first driver (two at once on an empty database would both
    # create it and wait out Derby's deadlock detection); a server is set up once too.
    run_job("query.py", f"CREATE DATABASE shared LOCATION '{lakehouse / 'shared'}'", env=env)

    def job(name: str) -> subprocess.Popen:
        sql = f"CREATE TABLE shared.{name} USING DELTA AS SELECT '{name}' AS made_by, id FROM range(3)"
        command = [sys.executable, str(REPO / "jobs" / "query.py"), sql, "SHOW TABLES IN shared"]
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first, second = job("first"), job("second")  # both drivers hold the catalog at the same time
    for proc in (first, second):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    assert not (lakehouse / "_metastore" / "metastore_db").exists()  # no embedded metastore was opened
    union = " UNION ALL ".join(f"SELECT made_by, count(*) AS n FROM shared.{t} GROUP BY 1" for t in ("first", "second"))
    out = run_job("query.py", "--format", "json", union, env=env).stdout
    rows = sorted((r["made_by"], r["n"]) for r in map(json.loads, out.splitlines()))
    assert rows == [("first", 3), ("second", 3)]
