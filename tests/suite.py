"""`make test`'s pytest run: the cluster tests and the rest in two pytest processes side by side.

The cluster tests (marked `cluster`) are one module of about 42 minutes on 2 cores (HDFS, a standalone cluster,
the Derby and MLflow servers, the whole chain in local mode and then job by job through spark-submit); the rest
take about 36. One after the other they took about 78 minutes; side by side, 70 (measured on this project's
2-core machine, both cores busy 97 % of the time, so the gain is what little idle time the two leave each other).
The rest's output is printed as it comes, the cluster tests' with a "[cluster] " prefix on each line. The exit
code is 0 only if both pass (or select nothing: pytest's 5); extra arguments go to both (`python tests/suite.py -x`).
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
