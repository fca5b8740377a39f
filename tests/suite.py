"""`make test`'s pytest run: the cluster tests and the rest in two pytest processes side by side.

The cluster tests (marked `cluster`) spend most of their time waiting on the processes they start: HDFS, a
standalone cluster's master, workers and executors, the Derby and MLflow servers, one spark-submit after another.
Run after the rest, they doubled the suite's time; run beside it, the two share the machine's cores. The rest's
output is printed as it comes, the cluster tests' with a "[cluster] " prefix on each line. The exit code is 0 only
if both pass (or select nothing: pytest's 5); extra arguments go to both (`python tests/suite.py -x`).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
NOTHING_SELECTED = 5  # pytest's exit code when no test was selected


def _prefixed(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


def main(extra: Sequence[str]) -> int:
    pytest = [sys.executable, "-m", "pytest", "-q", *extra]
    started = time.monotonic()
    # The cluster tests first (their module is the longer one); no cache: two processes would write it at once.
    cluster = subprocess.Popen(
        [*pytest, "-m", "cluster", "-p", "no:cacheprovider"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert cluster.stdout is not None
    echo = threading.Thread(target=_prefixed, args=(cluster.stdout, "[cluster] "), daemon=True)
    echo.start()
    try:
        rest = subprocess.run([*pytest, "-m", "not cluster"], cwd=REPO).returncode
        clustered = cluster.wait()
    finally:
        if cluster.poll() is None:
            cluster.terminate()
            cluster.wait()
    echo.join()
    minutes = (time.monotonic() - started) / 60
    print(f"suite: not cluster exit {rest}, cluster exit {clustered}, {minutes:.1f} min in all")
    return 0 if {rest, clustered} <= {0, NOTHING_SELECTED} else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
