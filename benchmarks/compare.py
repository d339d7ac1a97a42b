"""A/B: the time to ready and the CPU of ``up``, this checkout against another commit.

On a noisy machine (a VM whose speed changes by a third from one hour to
the next) a figure is comparable only with one measured in the same
minutes.  This runs the same measurement of two versions of netplay
alternately, each run in a fresh process, and prints the medians and their
ratio:

- ``base``: the commit given (``HEAD~1``, a tag, a hash), checked out into
  a temporary git worktree that is removed at the end;
- ``this``: the checkout this script is in, with its uncommitted changes.

Each version first brings its playground up and down once, unmeasured: that
makes the CA and certificates, so that every run measured is an ``up`` that
finds them kept, as every ``up`` after a user's first.  One run is then, in a
fresh process as ``netplay up`` is (its imports included): ``Playground.up``
of the topology, timed until ready (every service has passed its health
check), then ``down``; and the CPU time of ``up`` and ``down`` in every
process of the playground (the runners and servers are reaped by ``down``,
and their children by them).  Then, for a topology with services, what a
user waits for at a shell: ``python -m netplay up --detach``, from the
start of its process to its exit (Python's start, the imports of the
command, and its exit included), followed by an unmeasured ``down``.  Each
version has a playground name of its own, removed with ``down --purge`` at
the end.  Run as root:

    python3 benchmarks/compare.py HEAD~1                 # the book, 7 runs each
    python3 benchmarks/compare.py main line:1000 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from boot import resolve, settle

HERE = Path(__file__).resolve().parent


def cpu_s() -> float:
    """CPU time of this process and of every descendant it has reaped."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(spec: str, name: str) -> dict[str, float]:
    """One run, in a fresh process of the version under test (see the module's doc)."""
    from netplay import Playground

    spec, services = resolve(spec)
    cpu = cpu_s()
    start = time.perf_counter()
    pg = Playground.up(spec, name=name, services=services)
    ready = time.perf_counter() - start
    pg.down()
    return {"ready_s": ready, "cpu_s": cpu_s() - cpu}


def version(src: Path) -> dict[str, str]:
    """The environment of a process that runs the version whose modules are in ``src``."""
    return {**os.environ, "PYTHONPATH": str(src)}


def failed(src: Path, what: str, done: subprocess.CompletedProcess[str]) -> SystemExit:
    """The exit of this script when ``what`` of one version failed: its last word."""
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    return SystemExit(f"compare.py: {what} of {src.parent} failed: {last}")


def command(src: Path, spec: str, name: str) -> float:
    """One ``netplay up --detach`` of the version whose modules are in ``src``,
    from the start of its process to its exit; then its ``down``."""
    env = version(src)
    netplay = [sys.executable, "-m", "netplay"]
    start = time.perf_counter()
    done = subprocess.run(
        [*netplay, "up", "--detach", "--name", name, spec],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    subprocess.run([*netplay, "down", "--name", name], env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise failed(src, "`netplay up`", done)
    return took


def compiled(src: Path) -> Path:
    """``src``, its modules compiled (as install.sh does), so that no run compiles them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    return src


def run(src: Path, spec: str, name: str) -> dict[str, float]:
    """One run of the version whose modules are in ``src``, in a fresh process."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", spec, name],
        env=version(src),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise failed(src, "a run", done)
    result: dict[str, float] = json.loads(done.stdout)
    return result


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """The repository at ``commit``, in a temporary worktree removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="netplay-compare-"))
    git = ["git", "-C", str(HERE.parent)]
    subprocess.run([*git, "worktree", "add", "--detach", "-q", str(where), commit], check=True)
    try:
        yield where
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(where)], check=False)
        with contextlib.suppress(FileNotFoundError):
            where.rmdir()


def remove(src: Path, name: str) -> None:
    """``down --purge`` of one version's playground, by that version."""
    code = f"from netplay import Playground; Playground.remove({name!r}, purge=True)"
    subprocess.run([sys.executable, "-c", code], env=version(src), check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", help="the commit to compare this checkout with")
    parser.add_argument("spec", nargs="?", default="book", help="the topology (default: book)")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each version (default 7)")
    parser.add_argument("--one", nargs=2, metavar=("SPEC", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return 0
    if args.base is None:
        parser.error("name the commit to compare this checkout with (HEAD~1, main, a hash)")
    if os.geteuid() != 0:
        print("compare.py: run as root (the playgrounds are made as root)", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print("compare.py: --repeat must be at least 1", file=sys.stderr)
        return 2
    with_services = resolve(args.spec)[1]  # the command has no way to leave them out
    with worktree(args.base) as base:
        versions = {"base": compiled(base / "src"), "this": compiled(HERE.parent / "src")}
        names = {label: f"cmp{os.getpid()}{label}" for label in versions}
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in versions}
        try:
            for label, src in versions.items():
                run(src, args.spec, names[label])  # the CA and certificates, not measured
            for i in range(args.repeat):
                for label, src in versions.items():
                    settle()
                    figures = run(src, args.spec, names[label])
                    said = f"ready {figures['ready_s']:.3f} s, CPU {figures['cpu_s']:.3f} s"
                    if with_services:
                        settle()
                        figures["command_s"] = command(src, args.spec, names[label])
                        said += f", the command {figures['command_s']:.3f} s"
                    runs[label].append(figures)
                    print(f"run {i + 1}/{args.repeat} {label}: {said}", flush=True)
        finally:
            for label, src in versions.items():
                remove(src, names[label])
    print(f"\n{args.spec}, medians of {args.repeat} (base: {args.base})")
    print(f"{'figure':<28} {'base':>9} {'this':>9} {'this/base':>10}")
    figures = [("ready_s", "ready (certificates kept)"), ("cpu_s", "CPU of up and down")]
    if with_services:
        figures.append(("command_s", "`netplay up`, start to exit"))
    for key, label in figures:
        old = statistics.median(r[key] for r in runs["base"])
        new = statistics.median(r[key] for r in runs["this"])
        print(f"{label:<28} {old:>7.3f} s {new:>7.3f} s {new / old:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
