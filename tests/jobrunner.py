"""A warm process for tests: runs jobs' CLI entries one after another in one interpreter and one JVM.

A job in a fresh process spends most of a small test's time starting and warming the JVM (about 40 s for a silver
run over three rows, 5 s when the JVM is warm). Tests that run several jobs over one lakehouse send them here:
each request is one JSON line {"job": "silver_build.py", "args": [...]} on stdin, answered by one JSON line
{"code": exit code, "stdout": ..., "stderr": ...} on the file descriptor given as the first argument. The
process's own stdout goes to its stderr, so nothing the JVM prints can corrupt an answer.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback
from pathlib import Path

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def run_job(job: str, args: list[str]) -> tuple[int, str, str]:
    """The job's exit code, stdout and stderr, as its own process would have them: the job file runs as
    __main__ with these arguments."""
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [str(JOBS / job), *args]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(JOBS / job), run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:
            traceback.print_exc()
            code = 1
    return code, out.getvalue(), err.getvalue()


def main() -> None:
    answers = os.fdopen(int(sys.argv[1]), "w")
    os.dup2(2, 1)  # the JVM and anything else writing to stdout goes to stderr
    for line in sys.stdin:
        request = json.loads(line)
        code, out, err = run_job(request["job"], request["args"])
        answers.write(json.dumps({"code": code, "stdout": out, "stderr": err}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
