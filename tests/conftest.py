"""One session-scoped SparkSession tuned for tests, a throwaway lakehouse, and a fresh database per test."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from pyspark.sql import SparkSession

from marketlake.config import CONF_DIR, Settings, load_settings
from marketlake.metastore import server_command
from marketlake.session import JARS_DIR, get_spark
from marketlake.tables import ensure_databases

REPO = Path(__file__).resolve().parents[1]
TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.driver.memory": "2g",
}
# What the job processes the suite starts add to conf/local.yaml: like TEST_CONF, few tasks for tiny tables.
JOB_SPARK_CONF = {"spark.sql.shuffle.partitions": "2", "spark.databricks.delta.snapshotPartitions": "1"}


@pytest.fixture(scope="session", autouse=True)
def job_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of conf/ whose local.yaml carries JOB_SPARK_CONF, named by MARKETLAKE_CONF_DIR for every process the
    suite starts (a test that needs conf of its own sets MARKETLAKE_CONF_DIR itself). The settings stay the same
    except for task counts, so the jobs compute the same tables."""
    conf = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(CONF_DIR, conf)
    local = yaml.safe_load((conf / "local.yaml").read_text())
    local.setdefault("spark", {}).setdefault("conf", {}).update(JOB_SPARK_CONF)
    (conf / "local.yaml").write_text(yaml.safe_dump(local))
    os.environ["MARKETLAKE_CONF_DIR"] = str(conf)
    return conf


@pytest.fixture(scope="session")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lakehouse")
    os.environ["MARKETLAKE_LAKEHOUSE"] = str(root)
    return root


@pytest.fixture(scope="session")
def settings(lakehouse: Path) -> Settings:

    return load_settings("local")


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[SparkSession]:
    session = get_spark(settings, "marketlake-tests", "local[2]", TEST_CONF)
    ensure_databases(session, settings)
    yield session
    session.stop()


@pytest.fixture
def database(spark: SparkSession, tmp_path: Path) -> Iterator[str]:
    """A fresh catalog database located in this test's temp directory, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    spark.sql(f"CREATE DATABASE {name} LOCATION '{tmp_path / name}'")
    yield name
    spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def run_job(job: str, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a job as a user would (a separate process, a new Spark session)."""
    merged = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, str(REPO / "jobs" / job), *args],
        cwd=REPO,
        env=merged,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{job} {args} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real HDFS on 127.0.0.1 (Apache Hadoop's MiniDFSCluster: a NameNode and a DataNode, from Maven Central by
    `make hdfs-jars`), formatted in a temp dir and stopped when the session ends; its URI, hdfs://127.0.0.1:<port>."""
    jars = JARS_DIR / "hadoop"
    if not any(jars.glob("hadoop-client-minicluster-*.jar")):
        pytest.fail(f"Hadoop's minicluster jars are not in {jars}; run `make hdfs-jars`")
    work = tmp_path_factory.mktemp("hdfs")
    port, log, details = free_port(), work / "hdfs.log", work / "details.json"
    command = ["java", "-Xmx512m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]  # not every block it moves
    command += [f"-Dtest.build.data={work / 'data'}", "-cp", f"{jars}/*"]
    command += ["org.apache.hadoop.test.MiniDFSClusterManager", "-format", "-nnport", str(port), "-datanodes", "1"]
    command += ["-D", f"hdfs.minidfs.basedir={work / 'data'}", "-writeDetails", str(details)]
    with log.open("w") as out:  # the manager resolves some folders against its working directory
        proc = subprocess.Popen(command, cwd=work, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:  # the details are written once the DataNode has registered
        wait_ready(lambda: details.exists() and details.stat().st_size > 0, "HDFS", proc, log, 120)
        yield f"hdfs://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def metastore_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Derby's network server on 127.0.0.1, as `make metastore-server` starts it; its port."""
    home, port = tmp_path_factory.mktemp("derby"), free_port()
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(server_command(JARS_DIR, home, "127.0.0.1", port), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(lambda: listening(port), "Derby's network server", proc, log, 60)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLflow's tracking server as a team runs it (`mlflow server`: a database backend, artifacts proxied by the
    server) on 127.0.0.1; its URL. One per test module: models registered elsewhere do not shift its versions."""
    home, port = tmp_path_factory.mktemp("mlflow-server"), free_port()
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}", "--artifacts-destination", str(home / "art")]
    command += ["--workers", "1"]
    log = home / "server.log"
    with log.open("w") as out:  # its own process group: the server's workers are stopped with it
        proc = subprocess.Popen(command, cwd=home, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(lambda: _healthy(url), "mlflow server", proc, log, 120)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(log: Path, text: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    """Until `text` appears in a process's log; fails with the log's end if the process ends or time runs out."""
    wait_ready(lambda: log.exists() and text in log.read_text(errors="replace"), f"'{text}'", proc, log, seconds)


def wait_ready(ready: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    """Until ready() holds for a server a test started; fails with its log's end if it ends or time runs out."""
    deadline = time.monotonic() + seconds
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"not ready ({what}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)


def load_job(job: str) -> ModuleType:
    """jobs/<job> loaded as a module of this process."""
    spec = importlib.util.spec_from_file_location(f"job_{job.removesuffix('.py')}", REPO / "jobs" / job)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def job_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """Run a job's CLI entry in this process (argument checks need no new JVM): (exit code, stdout, stderr)."""
    monkeypatch.setattr("marketlake.cli.configure_logging", lambda verbose=False: None)

    def call(job: str, *args: str) -> tuple[int, str, str]:
        module = load_job(job)
        capsys.readouterr()
        try:
            code = module.run(module.main, module.parser(), list(args))
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def delta_tables(lakehouse: Path, database: str) -> dict[str, str]:
    """The Delta tables under <lakehouse>/<database>, by name -> path (read by path, without the catalog)."""
    root = lakehouse / database
    if not root.is_dir():
        return {}
    return {p.name: str(p) for p in sorted(root.iterdir()) if (p / "_delta_log").is_dir()}


class WarmJobs:
    """Jobs run one after another in one warm process (tests/jobrunner.py) with a fixed environment: each still
    parses its own arguments, opens its session with getOrCreate and reports as a process would, but only the first
    pays the JVM's start and warm-up. Tests that need a cold process (a time zone, a new session) use run_job."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        read, write = os.pipe()
        self._proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "jobrunner.py"), str(write)],
            cwd=REPO,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=(write,),
        )
        os.close(write)
        self._answers = os.fdopen(read)

    def __call__(self, job: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"job": job, "args": list(args)}) + "\n")
        self._proc.stdin.flush()
        line = self._answers.readline()
        if not line:
            raise AssertionError(f"the job runner ended ({self._proc.poll()}):\n{self.log.read_text()[-4000:]}")
        answer = json.loads(line)
        result = subprocess.CompletedProcess([job, *args], answer["code"], answer["stdout"], answer["stderr"])
        if check and result.returncode != 0:
            raise AssertionError(f"{job} {args} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._answers.close()


class JobRunners:
    """The warm job process of each lakehouse, started on first use. One per lakehouse, and released before any
    other process opens that lakehouse's catalog: an embedded metastore admits one JVM at a time."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._runners: dict[Path, WarmJobs] = {}

    def __call__(self, lakehouse: Path) -> WarmJobs:
        if lakehouse not in self._runners:
            log = self._tmp.mktemp("jobs") / "runner.log"
            self._runners[lakehouse] = WarmJobs({"MARKETLAKE_LAKEHOUSE": str(lakehouse)}, log)
        return self._runners[lakehouse]

    def release(self, lakehouse: Path) -> None:
        runner = self._runners.pop(lakehouse, None)
        if runner is not None:
            runner.close()

    def release_all(self) -> None:
        for lakehouse in list(self._runners):
            self.release(lakehouse)


@pytest.fixture(scope="session")
def warm_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobRunners]:
    runners = JobRunners(tmp_path_factory)
    yield runners
    runners.release_all()


GEN_ARGS = ("--scale", "0.1", "--days", "4", "--seed", "7", "--start", "2026-03-01")


@pytest.fixture(scope="session")
def pipeline_runs(tmp_path_factory: pytest.TempPathFactory, warm_jobs: JobRunners) -> dict[str, Path]:
    """The user's pipeline run twice from the same seed: generated and ingested under local[N] into landing-N and
    lh-N, for N in 1, 2, each in the warm job process of lh-N (which later tests on that lakehouse reuse)."""
    base = tmp_path_factory.mktemp("pipeline")
    for n in ("1", "2"):
        master = f"local[{n}]"
        jobs = warm_jobs(base / f"lh-{n}")
        jobs("generate.py", "--master", master, *GEN_ARGS, "--out", str(base / f"landing-{n}"))
        jobs("bronze_ingest.py", "--master", master, "--domain", "all", "--landing", str(base / f"landing-{n}"))
    return {name: base / name for name in ("landing-1", "landing-2", "lh-1", "lh-2")}


PRIVACY_GEN_ARGS = ("--scale", "0.05", "--days", "4", "--seed", "5", "--start", "2026-03-01")
# Gold tables of every kind: per person (RFM, churn, trend outcomes, compliance flags) and aggregates.
PRIVACY_GOLD = (
    "exchange_pair_daily",
    "exchange_compliance_flags",
    "exchange_rfm",
    "exchange_churn_risk",
    "exchange_churn_features",
    "commerce_daily_kpis",
    "commerce_rfm",
    "fact_trend_purchase_outcomes",
)


@pytest.fixture(scope="session")
def privacy_lakehouse(tmp_path_factory: pytest.TempPathFactory, warm_jobs: JobRunners) -> Path:
    """A lakehouse of its own through bronze, silver and 8 gold tables (4 days of 2026-03) for the privacy tests, which
    erase people from it and expire its partitions: its warm job process is warm_jobs(privacy_lakehouse)."""
    root = tmp_path_factory.mktemp("privacy") / "lh"
    jobs = warm_jobs(root)
    jobs("generate.py", *PRIVACY_GEN_ARGS)
    jobs("bronze_ingest.py", "--domain", "all")
    jobs("silver_build.py", "--domain", "all")
    jobs("gold_build.py", "--start", "2026-03-01", "--end", "2026-03-04", "--tables", ",".join(PRIVACY_GOLD))
    return root
