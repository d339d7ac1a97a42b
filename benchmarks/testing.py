"""What a fresh playground per test costs a test suite, against one shared by the session.

For each case (book's network alone, book with its services, line:10)
this writes a small test suite of N tests that each run one command in a
host, and runs it with pytest and the netplay plugin twice in a row:
once with ``playground`` (a fresh playground for every test) and once
with ``shared_playground`` (one for the whole session, the reference).
A plugin of the benchmark's records each test's setup and teardown time
(which is where the fixtures work).  The overhead per test is the mean of
setup + teardown with fresh playgrounds minus that with the shared one; the
first test of each run (which makes the session's CA and certificates, and
the shared playground) and the last (whose teardown ends the session) are
left out.  Run as root (or as a user where user
namespaces are allowed):

    python3 benchmarks/testing.py               # 30 tests per suite
    python3 benchmarks/testing.py --tests 50 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = {  # name: (marker arguments, target overhead per test in seconds, or None)
    "book network": ('"book", services=False', 0.15),
    "book with services": ('"book"', 0.6),
    "line:10 network": ('"line:10", services=False', None),
}

SUITE = """
import pytest

pytestmark = pytest.mark.netplay_topology({marker})

@pytest.mark.parametrize("n", range({tests}))
def test_one(n, {fixture}):
    assert {fixture}.host("h1").run(["true"]).returncode == 0
"""

RECORDER = """
import json, os

TIMES = {}

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        TIMES.setdefault(report.nodeid, 0.0)
        TIMES[report.nodeid] += report.duration

def pytest_sessionfinish(session):
    with open(os.environ["NETPLAY_BENCH_TIMES"], "w") as f:
        json.dump(list(TIMES.values()), f)
"""


def run_suite(directory: Path, marker: str, fixture: str, tests: int) -> list[float]:
    """Setup + teardown of every test of one suite, in order."""
    (directory / "conftest.py").write_text(RECORDER)
    (directory / "test_suite.py").write_text(
        SUITE.format(marker=marker, tests=tests, fixture=fixture)
    )
    times = directory / "times.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_suite.py"],
        cwd=directory,
        env={**os.environ, "NETPLAY_BENCH_TIMES": str(times)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"testing.py: the suite failed:\n{result.stdout[-3000:]}")
    measured: list[float] = json.loads(times.read_text())
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=30, help="tests per suite (default 30)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each suite; the median overhead is shown"
    )
    args = parser.parse_args(argv)
    print(f"{'case':<20} {'fresh per test':>15} {'shared':>9} {'overhead':>9}  target")
    for name, (marker, target) in CASES.items():
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                fresh = run_suite(Path(tmp), marker, "playground", args.tests)[1:-1]
                shared = run_suite(Path(tmp), marker, "shared_playground", args.tests)[1:-1]
            runs.append((statistics.mean(fresh), statistics.mean(shared)))
        fresh_s, shared_s = (statistics.median(r[i] for r in runs) for i in (0, 1))
        overhead = statistics.median(f - s for f, s in runs)
        verdict = "-" if target is None else ("ok" if overhead <= target else f"OVER {target}")
        print(
            f"{name:<20} {fresh_s:>13.3f} s {shared_s:>7.3f} s {overhead:>7.3f} s  {verdict}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
