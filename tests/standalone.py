"""A real standalone Spark cluster for tests: one master and N workers on 127.0.0.1, each worker in a process group
of its own (the worker JVM, the executors it launches and their Python workers), so a test can kill one worker the
way a host is lost: SIGKILL to the whole group, nothing shut down in order."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyspark

from tests.conftest import free_port, wait_for

SPARK_CLASS = Path(sys.executable).parent / "spark-class"


class StandaloneCluster:
    def __init__(self, base: Path, workers: int, cores: int, memory: str) -> None:
        self.base = base
        self.env = {
            **os.environ,
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(base),
            # A lost worker is declared dead after 15 s instead of a minute, so no new executor is sent to it.
            "SPARK_MASTER_OPTS": "-Dspark.worker.timeout=15",
        }
        port = free_port()
        self.url = f"spark://127.0.0.1:{port}"
        self.master = self._start(base / "master.log", ["org.apache.spark.deploy.master.Master", "--port", str(port)])
        self.cores, self.memory = cores, memory
        self.workers: list[subprocess.Popen] = []
        try:
            wait_for(base / "master.log", "I have been elected leader", self.master)
            for n in range(workers):
                self.workers.append(self._start_worker(n))
        except BaseException:
            self.stop()
            raise

    def _start_worker(self, n: int) -> subprocess.Popen:
        args = ["org.apache.spark.deploy.worker.Worker", self.url, "--cores", str(self.cores), "--memory", self.memory]
        log = self.base / f"worker-{n}-{time.monotonic_ns()}.log"
        proc = self._start(log, [*args, "--work-dir", str(self.work_dir(n))])
        wait_for(log, "Successfully registered with master", proc)
        return proc

    def work_dir(self, n: int) -> Path:
        return self.base / f"work-{n}"

    def _start(self, log_file: Path, args: list[str]) -> subprocess.Popen:
        command = [str(SPARK_CLASS), *args[:1], "--host", "127.0.0.1", "--webui-port", str(free_port()), *args[1:]]
        with log_file.open("w") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def executors(self, n: int) -> list[Path]:
        """The executor folders worker n has launched (<work dir>/<app id>/<executor id>)."""
        return sorted(p.parent for p in self.work_dir(n).glob("app-*/*/stderr"))

    def prune(self) -> list[int]:
        """Per worker, how many of its executor folders hold a shipped Python environment (./env); those copies
        (about 470 MB each) and the jars and zips shipped beside them are removed, the logs kept. For after a job."""
        shipped = []
        for n in range(len(self.workers)):
            found = 0
            for executor in self.executors(n):
                if (executor / "env" / "bin" / "python").exists():
                    found += 1
                    shutil.rmtree(executor / "env")
                for shipped_file in [*executor.glob("*.jar"), *executor.glob("*.zip")]:
                    shipped_file.unlink()
            shipped.append(found)
        return shipped

    def kill_worker(self, n: int) -> None:
        """SIGKILL worker n with every executor and Python worker it started, as if its host went down."""
        os.killpg(self.workers[n].pid, signal.SIGKILL)
        self.workers[n].wait()

    def restart_worker(self, n: int) -> None:
        """A new worker in place of worker n (killed), registered with the master."""
        assert self.workers[n].poll() is not None
        self.workers[n] = self._start_worker(n)

    def stop(self) -> None:
        for proc in [*reversed(self.workers), self.master]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*reversed(self.workers), self.master]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
