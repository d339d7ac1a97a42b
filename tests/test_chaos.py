"""Chaos: ``kill -9`` at seeded random moments, then nothing may be left.

Each case kills a process of a playground with SIGKILL: ``netplay up``
itself while it builds, a service's runner, a service's server (one to
three times, also while its runner restarts it) and, rootless, the keeper
that holds the playground's user namespace (while ``up`` builds, once it
runs, and while a program started with ``netplay exec`` runs in a host).
The moments and what follows (``up`` of the same name then ``down``, or
``down`` at once) come from ``random.Random`` seeded with the case's kind
and seed, so a failure names its seed and makes the same choices when run
again (where the build has got to at a given moment varies a little from
run to run).  One moment is too short to hit by chance, so it is pinned
down with SIGSTOP: rootless ``up`` killed once its keeper is ready but not
yet in the state file.

Afterwards nothing of the playground may be left: no network namespace or
``ip netns`` link, no mount under its runtime directory, no link or
nftables table of its in the machine's namespace, no process (those the
state file and the services recorded, by pid and start time, and any whose
command line or title names the playground, whose working directory is in
its runtime directory, or that is in one of its namespaces; rootless, any
of the test's own user), no state directory.  ``status`` never says a dead
process runs, nor answers for a playground that cannot run; no command
exits with an internal error or shows a traceback.

The rootless cases use the user of tests/test_rootless.py (a fresh system
user with a world-readable copy of the packages, driven with runuser).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from test_rootless import PYTHON, _data_dir, user

__all__ = ["user"]  # the fixture, from tests/test_rootless.py

pytestmark = [
    pytest.mark.needs_playground,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the chaos test looks at the whole machine: run it as root"
    ),
]

COMMAND_TIMEOUT_S = 60
SERVICES = ("backbone/dns", "www/http", "www/https")
UP_TAKES_S = 0.65  # about how long `netplay up` of the book takes, from exec to exit
GONE_WITHIN_S = 2.0  # a process sent SIGKILL by `down` may take a moment to be gone
OURS = re.compile(r"^(eth\d+|p\d+|br0)(@.*)?$")  # the interface names a playground makes
TOKEN = uuid.uuid4().hex[:6]


# -- processes -----------------------------------------------------------------


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()


def _start(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def _alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), and is the process that started at ``start``."""
    fields = _stat(pid)
    if fields is None or fields[0] == b"Z":
        return False
    return start is None or int(fields[19]) == start


def _session(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[3])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _user_namespace(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/user").st_ino
    except OSError:
        return None


def _kill(pid: int, start: int | None) -> None:
    """SIGKILL ``pid`` if it is still the process that started at ``start``."""
    if _alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- who runs netplay ----------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who runs netplay: root, or the test's ordinary user (rootless)."""

    user: tuple[str, Path] | None = None

    @property
    def uid(self) -> int | None:
        return None if self.user is None else pwd.getpwnam(self.user[0]).pw_uid

    def base(self) -> Path:
        return Path("/run/netplay") if self.user is None else Path(f"/tmp/netplay-{self.uid}")

    def argv(self, *args: str) -> list[str]:
        if self.user is None:
            return [sys.executable, "-m", "netplay", *args]
        name, lib = self.user
        env = ["env", "-u", "NETPLAY_DATA_DIR", "-u", "XDG_RUNTIME_DIR", f"PYTHONPATH={lib}"]
        env.append(f"NETPLAY_DATA_DIR={_data_dir(pwd.getpwnam(name).pw_uid)}")
        return ["runuser", "-u", name, "--", *env, PYTHON, "-m", "netplay", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            cwd="/",
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd="/",
        )

    def netplay_pid(self, proc: subprocess.Popen[str]) -> int | None:
        """The pid of netplay itself: ``proc``'s own, or (rootless) its child under runuser."""
        if self.user is None:
            return proc.pid
        while proc.poll() is None:
            found = _children(proc.pid)
            if found:
                return found[0]
            time.sleep(0.001)
        return None


# -- what a playground has, and what it left -----------------------------------


@dataclass
class Seen:
    """Everything of one playground the test has seen: processes (pid -> start
    time and what it was), and namespace inodes."""

    name: str
    actor: Actor
    procs: dict[int, tuple[int | None, str]] = field(default_factory=dict)
    inodes: set[int] = field(default_factory=set)

    @property
    def dir(self) -> Path:
        return self.actor.base() / self.name

    def state(self) -> dict[str, object] | None:
        try:
            raw = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return raw if isinstance(raw, dict) else None

    def runners(self) -> dict[str, dict[str, int]]:
        state = self.state() or {}
        found = state.get("runners")
        return found if isinstance(found, dict) else {}

    def server(self, service: str) -> int | None:
        """The server pid the runner of ``service`` last wrote down."""
        host, name = service.split("/")
        try:
            said = json.loads((self.dir / "services" / f"{host}.{name}.json").read_text())
        except (OSError, ValueError):
            return None
        return said.get("pid") if isinstance(said, dict) else None

    def _note(self, pid: object, start: object, what: str) -> None:
        if isinstance(pid, int) and pid > 0 and pid not in self.procs:
            known = start if isinstance(start, int) else _start(pid)
            self.procs[pid] = (known, what)

    def look(self) -> None:
        """Note what the playground has now: the processes its state file and
        its services record (and their sessions), its namespaces, and the
        processes :meth:`scan` finds."""
        state = self.state() or {}
        for key in ("owner", "keeper"):
            rec = state.get(key)
            if isinstance(rec, dict):
                self._note(rec.get("pid"), rec.get("start"), f"the {key}")
        if isinstance(state.get("userns"), int):
            self.inodes.add(state["userns"])  # type: ignore[arg-type]
        runners = self.runners()
        for ident, rec in runners.items():
            if isinstance(rec, dict):
                self._note(rec.get("pid"), rec.get("start"), f"the runner of {ident}")
        for service in SERVICES:
            server = self.server(service)
            if server is not None and _alive(server):
                self._note(server, None, f"the server of {service}")
        sessions = {rec.get("pid") for rec in runners.values() if isinstance(rec, dict)}
        for pid in _pids():
            if _session(pid) in sessions and _alive(pid):
                self._note(pid, None, f"in the session of runner {_session(pid)}")
        pins = state.get("pins")
        for pin in pins if isinstance(pins, list) else []:
            with contextlib.suppress(OSError):
                st = os.stat(pin)
                if st.st_dev != os.stat(Path(pin).parent).st_dev:  # a namespace is pinned
                    self.inodes.add(st.st_ino)
        for pid, why in self.scan().items():
            self._note(pid, None, why)

    def scan(self) -> dict[int, str]:
        """Live processes that belong to the playground: their command line names
        it (``--name NAME``, or a title ``netplay: NAME ...``), their working
        directory is in its runtime directory, they are in one of its
        namespaces, or (rootless) they are the test user's.  The commands the
        test itself runs are left out."""
        me = os.getpid()
        found = {}
        for pid in _pids():
            fields = _stat(pid)
            if pid == me or fields is None or fields[0] == b"Z" or int(fields[1]) == me:
                continue
            line = _cmdline(pid)
            argv = line.split()
            why = []
            if any(a == "--name" and b == self.name for a, b in itertools.pairwise(argv)):
                why.append("its command line names the playground")
            if f"{line} ".startswith(f"netplay: {self.name} "):
                why.append("its title names the playground")
            if self.actor.uid is not None and _owner(pid) == self.actor.uid:
                why.append("it is the test user's")
            if _cwd(pid) == self.dir or self.dir in _cwd(pid).parents:
                why.append("its working directory is the playground's")
            if _namespaces(pid) & self.inodes:
                why.append("it is in one of the playground's namespaces")
            if why:
                found[pid] = ", ".join(why)
        return found


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _cwd(pid: int) -> Path:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return Path("/proc/unknown")


def _namespaces(pid: int) -> set[int]:
    found = set()
    for kind in ("net", "mnt", "uts", "user"):
        with contextlib.suppress(OSError):
            found.add(os.stat(f"/proc/{pid}/ns/{kind}").st_ino)
    return found


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _mounts_under(path: Path) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(path) or point.startswith(f"{path}/"):
            points.append(point)
    return points


@dataclass(frozen=True)
class Machine:
    """The machine's own links and nftables tables before the cases ran."""

    links: frozenset[str]
    tables: frozenset[str]

    @classmethod
    def now(cls) -> Machine:
        links = (line.split(":")[1].strip() for line in _out(["ip", "-o", "link"]).splitlines())
        tables = _out(["nft", "list", "tables"]).splitlines()
        return cls(frozenset(links), frozenset(t.strip() for t in tables))


def _left(seen: Seen, machine: Machine) -> list[str]:
    """What is left of the playground, one line each."""
    left = []
    for pid, (start, what) in sorted(seen.procs.items()):
        if _alive(pid, start):
            left.append(f"process {pid} ({what}) still runs: {_cmdline(pid)!r}")
    for pid, why in sorted(seen.scan().items()):
        if pid not in seen.procs or not _alive(pid, seen.procs[pid][0]):
            left.append(f"process {pid} still runs ({why}): {_cmdline(pid)!r}")
    if seen.dir.exists():
        inside = sorted(str(p.relative_to(seen.dir)) for p in seen.dir.rglob("*"))
        left.append(f"its directory {seen.dir} is still there, holding {inside}")
    prefix = f"netplay-{seen.name}-"
    netns = [n for n in _out(["ip", "netns", "list"]).split() if n.startswith(prefix)]
    if netns:
        left.append(f"network namespaces {netns} are still in `ip netns`")
    with contextlib.suppress(FileNotFoundError):
        links = sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
        if links:
            left.append(f"/run/netns still holds {links}")
    mounts = _mounts_under(seen.dir)
    if mounts:
        left.append(f"mounts {mounts} are still there")
    now = Machine.now()
    links = sorted(n for n in now.links - machine.links if OURS.match(n))
    if links:
        left.append(f"links {links} appeared in the machine's network namespace")
    tables = sorted(t for t in now.tables - machine.tables if "netplay" in t)
    if tables:
        left.append(f"nftables tables {tables} appeared in the machine's network namespace")
    return left


def _left_after_down(seen: Seen, machine: Machine) -> list[str]:
    """:func:`_left`, given a moment for processes that were sent SIGKILL to be gone."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while True:
        left = _left(seen, machine)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _clean(seen: Seen) -> None:
    """Remove what a failed case left, by the names and pids it holds."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        seen.actor.run("down", "--name", seen.name)
    for _ in range(10):
        targets = {**{p: s for p, (s, _w) in seen.procs.items()}, **dict.fromkeys(seen.scan())}
        live = {p: s for p, s in targets.items() if _alive(p, s)}
        if not live:
            break
        for pid, start in live.items():
            _kill(pid, start)
        time.sleep(0.05)
    for point in reversed(_mounts_under(seen.dir)):
        subprocess.run(["umount", "-l", point], check=False)
    with contextlib.suppress(FileNotFoundError):
        for link in os.listdir("/run/netns"):
            if link.startswith(f"netplay-{seen.name}-"):
                os.unlink(f"/run/netns/{link}")
    shutil.rmtree(seen.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def machine() -> Machine:
    return Machine.now()


class Case:
    """One chaos case: its seeded choices, what it has seen, and what went wrong."""

    def __init__(self, kind: str, seed: int, actor: Actor, machine: Machine) -> None:
        self.rng = random.Random(f"{kind}-{seed}")
        self.kind, self.seed, self.machine = kind, seed, machine
        self.seen = Seen(f"cx{TOKEN}-{kind}{seed}", actor)
        self.steps: list[str] = []
        self.problems: list[str] = []

    @property
    def actor(self) -> Actor:
        return self.seen.actor

    def step(self, text: str) -> None:
        self.steps.append(text)

    def netplay(
        self, *args: str, expect: tuple[int, ...] = (0,)
    ) -> subprocess.CompletedProcess[str]:
        """Run netplay; an unexpected status, an internal error or a traceback is a problem."""
        result = self.actor.run(*args)
        self.check_said(" ".join(args[:1]), result.returncode, result.stderr, expect)
        return result

    def check_said(self, what: str, status: int, stderr: str, expect: tuple[int, ...]) -> None:
        if status not in expect or status == 70 or "Traceback" in stderr:
            self.problems.append(
                f"`netplay {what}` exited with {status} (expected {expect}): {stderr.strip()!r}"
            )

    def check_status(
        self, *, running: bool, killed: set[int], gone: frozenset[str] = frozenset()
    ) -> None:
        """``status`` answers for a playground that is ``running`` and says "not
        running" (exit 8) for one that is not; it never says a process runs that
        is dead (one of ``killed``, say), nor a service whose runner is ``gone``."""
        result = self.netplay("status", "--name", self.seen.name, "--json", expect=(0, 8))
        if result.returncode != (0 if running else 8):
            self.problems.append(
                f"`netplay status` exited with {result.returncode} for a playground that "
                + ("runs" if running else "cannot run")
            )
        if result.returncode != 0:
            return
        for service in json.loads(result.stdout)["services"]:
            ident, state, pid = service["id"], service["state"], service["pid"]
            if state == "running" and pid is None:
                self.problems.append(f"status says {ident} is running, with no pid")
            if pid is not None and (pid in killed or not _alive(pid)):
                self.problems.append(f"status says {ident} is {state} with pid {pid}, not alive")
            if ident in gone and (state != "stopped" or pid is not None):
                self.problems.append(
                    f"status says {ident} is {state} (pid {pid}), yet its runner is dead"
                )

    def running(self) -> bool:
        """Whether the playground is running as its state file says (root:
        detached and ready; its owner is gone)."""
        state = self.seen.state() or {}
        return state.get("ready") is True and state.get("detached") is True

    def stage(self) -> str:
        """How far ``up`` has come, as its state file says."""
        state = self.seen.state()
        if state is None:
            return "nothing" if not self.seen.dir.exists() else "no state file"
        if state.get("ready") is True:
            return "finished" if state.get("detached") is True else "ready, not yet detached"
        if self.seen.runners():
            return "services starting"
        if self.actor.user is not None:  # its pins are in its keeper's mount namespace
            return "building"
        return f"building, {len(self.seen.inodes)} namespaces pinned"

    def finish(self, *, up_first: bool, up_expect: tuple[int, ...]) -> None:
        """Optionally ``up`` again, then ``down``; then nothing may be left."""
        if up_first:
            self.step("netplay up again")
            self.netplay("up", "--detach", "--name", self.seen.name, expect=up_expect)
            self.seen.look()
        down = self.netplay("down", "--name", self.seen.name)
        self.step(f"netplay down ({down.stdout.strip()!r})")
        left = _left_after_down(self.seen, self.machine)
        if left:
            self.problems.append("left after `down`:")
            self.problems += [f"  {line}" for line in left]

    def report(self) -> str:
        return (
            f"{self.kind} seed {self.seed} ({'root' if self.actor.user is None else 'rootless'}, "
            f"playground {self.seen.name}): "
            + "; ".join(self.steps)
            + "\n"
            + "\n".join(self.problems)
        )


@contextlib.contextmanager
def chaos(kind: str, seed: int, actor: Actor, machine: Machine) -> Iterator[Case]:
    case = Case(kind, seed, actor, machine)
    try:
        yield case
    finally:
        leftover = _left(case.seen, machine)
        if leftover:
            _clean(case.seen)
        print(case.report())  # shown by pytest -s, or with a failure
    assert not case.problems, case.report()


# -- the cases -----------------------------------------------------------------

UP_SEEDS = range(12)


def _kill_up(case: Case) -> None:
    """``up`` killed at a seeded moment while it builds; then maybe ``up``, then ``down``."""
    delay = case.rng.uniform(0.0, UP_TAKES_S)
    up_first = case.rng.random() < 0.5
    case.step(f"kill -9 of `netplay up` {delay:.3f} s after it was started")
    # rootless, the delay starts before runuser: about 0.02 s more than as root
    started = time.monotonic()
    up = case.actor.popen("up", "--detach", "--name", case.seen.name)
    target = case.actor.netplay_pid(up)
    start = None if target is None else _start(target)
    time.sleep(max(0.0, delay - (time.monotonic() - started)))
    if target is None or not _alive(target, start):
        case.step("(it had ended by then)")
    else:
        _kill(target, start)
    _, err = up.communicate(timeout=COMMAND_TIMEOUT_S)
    # killed: -9, or as runuser reports a child killed by SIGKILL
    case.check_said("up (killed)", up.returncode, err, (0, -signal.SIGKILL, 128 + signal.SIGKILL))
    case.seen.look()
    running = case.running()
    case.step(f"its state file then said: {case.stage()}")
    case.check_status(running=running, killed=set())
    case.finish(up_first=up_first, up_expect=(5,) if running else (0,))


@pytest.mark.parametrize("seed", UP_SEEDS)
def test_kill_up_while_it_builds(seed: int, machine: Machine) -> None:
    with chaos("up", seed, Actor(), machine) as case:
        _kill_up(case)


def _up(case: Case) -> bool:
    case.step("netplay up")
    up = case.netplay("up", "--detach", "--name", case.seen.name)
    case.seen.look()
    return up.returncode == 0


def _kill_runner(case: Case, service: str) -> None:
    """The runner of ``service`` killed; a seeded wait; then maybe ``up``, then ``down``."""
    if not _up(case):
        return
    wait, up_first = case.rng.uniform(0.0, 0.5), case.rng.random() < 0.5
    runner = case.seen.runners()[service]
    server = case.seen.server(service)
    case.step(f"kill -9 of the runner of {service} (pid {runner['pid']})")
    _kill(runner["pid"], runner["start"])
    case.check_status(running=True, killed={runner["pid"]}, gone=frozenset({service}))
    case.step(f"wait {wait:.3f} s")
    time.sleep(wait)
    case.seen.look()
    if server is not None and _alive(server):
        case.step(f"its server (pid {server}) still ran")
    case.finish(up_first=up_first, up_expect=(5,))


@pytest.mark.parametrize("service", SERVICES)
def test_kill_a_runner(service: str, machine: Machine) -> None:
    with chaos("runner", SERVICES.index(service), Actor(), machine) as case:
        _kill_runner(case, service)


def _kill_server(case: Case, service: str) -> None:
    """The server of ``service`` killed one to three times, at seeded moments:
    while it runs, while its runner waits to restart it, or while it starts
    again; then maybe ``up``, then ``down``."""
    if not _up(case):
        return
    killed: set[int] = set()
    for _round in range(case.rng.randint(1, 3)):
        server = case.seen.server(service)
        if server is not None and _alive(server):
            case.step(f"kill -9 of the server of {service} (pid {server})")
            _kill(server, None)
            killed.add(server)
            case.check_status(running=True, killed=killed)
        else:
            case.step(f"no server of {service} to kill")
        wait = case.rng.uniform(0.0, 0.8)
        case.step(f"wait {wait:.3f} s")
        time.sleep(wait)
        case.seen.look()
    case.check_status(running=True, killed=killed)
    case.finish(up_first=case.rng.random() < 0.5, up_expect=(5,))


SERVER_SEEDS = range(2)


@pytest.mark.parametrize("seed", SERVER_SEEDS)
@pytest.mark.parametrize("service", SERVICES)
def test_kill_a_server(service: str, seed: int, machine: Machine) -> None:
    seed = SERVICES.index(service) * len(SERVER_SEEDS) + seed
    with chaos("server", seed, Actor(), machine) as case:
        _kill_server(case, service)


# -- rootless --------------------------------------------------------------------

ROOTLESS_SEEDS = range(4)
KEEPER_SEEDS = range(4)
KEEPER_TO_READY_S = 0.45  # about how long rootless `up` takes once its keeper is made


def test_rootless_kill_a_runner(user: tuple[str, Path], machine: Machine) -> None:
    with chaos("rlrunner", 0, Actor(user), machine) as case:
        _kill_runner(case, "www/https")


def test_rootless_kill_a_server(user: tuple[str, Path], machine: Machine) -> None:
    with chaos("rlserver", 0, Actor(user), machine) as case:
        _kill_server(case, "www/http")


@pytest.mark.parametrize("seed", ROOTLESS_SEEDS)
def test_rootless_kill_up_while_it_builds(
    seed: int, user: tuple[str, Path], machine: Machine
) -> None:
    with chaos("rlup", seed, Actor(user), machine) as case:
        _kill_up(case)


def test_rootless_kill_up_once_its_keeper_is_ready(
    user: tuple[str, Path], machine: Machine
) -> None:
    """``up`` killed once its keeper has said it is ready, before ``up`` writes
    the keeper down in the state file.  To hit that moment every time, ``up``
    is stopped (SIGSTOP) as soon as it has forked its keeper (a child that
    makes a user namespace of its own), and killed once the keeper has said it
    is ready and closed that pipe.  The keeper must then end by itself: it was
    never given the go-ahead."""
    with chaos("rlkeeperready", 0, Actor(user), machine) as case:
        up = case.actor.popen("up", "--detach", "--name", case.seen.name)
        target = case.actor.netplay_pid(up)
        start = None if target is None else _start(target)
        keeper = None
        while target is not None and keeper is None and up.poll() is None:
            children = _children(target)
            if not children:
                continue  # no sleep: the moment is short
            os.kill(target, signal.SIGSTOP)
            own = _user_namespace(target)
            for child in children:  # the keeper, or another child that ends
                deadline = time.monotonic() + 5.0  # a keeper unshares at once
                while _alive(child) and _user_namespace(child) == own:
                    if time.monotonic() > deadline:
                        break  # not the keeper, and it lives on: let `up` go on
                    time.sleep(0.001)
                else:
                    keeper = child if _alive(child) else None
                if keeper is not None:
                    break
            if keeper is None:
                os.kill(target, signal.SIGCONT)
        if target is not None and keeper is not None:
            # ready: it has closed the pipe it said so on, and holds only the one
            # it waits on for the go-ahead `up` gives once the state names it
            deadline = time.monotonic() + 10.0
            while _alive(keeper) and _pipes_beyond_stdio(keeper) > 1:
                assert time.monotonic() < deadline, "the keeper never said it was ready"
                time.sleep(0.001)
            case.step("kill -9 of `netplay up` once its keeper had said it was ready")
        if target is not None:
            _kill(target, start)
        with contextlib.suppress(ProcessLookupError):
            os.kill(up.pid, signal.SIGCONT)  # runuser stops itself when its child is stopped
        _, err = up.communicate(timeout=COMMAND_TIMEOUT_S)
        killed = (0, -signal.SIGKILL, 128 + signal.SIGKILL)
        case.check_said("up (killed)", up.returncode, err, killed)
        case.seen.look()
        case.step(f"its state file then said: {case.stage()}")
        case.check_status(running=case.running(), killed=set())
        case.finish(up_first=False, up_expect=(0,))


def _pipes_beyond_stdio(pid: int) -> int:
    """How many pipes ``pid`` holds as fds beyond 0, 1 and 2."""
    try:
        fds = [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return 0
    found = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            if fd > 2 and os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                found += 1
    return found


def _keeper(case: Case, up: subprocess.Popen[str] | None = None) -> tuple[int, int | None] | None:
    """The keeper, once the state file names it (while ``up`` runs, if given)."""
    while True:
        keeper = (case.seen.state() or {}).get("keeper")
        if isinstance(keeper, dict):
            return keeper["pid"], keeper.get("start")
        if up is None or up.poll() is not None:
            return None
        time.sleep(0.002)


@pytest.mark.parametrize("seed", KEEPER_SEEDS)
def test_rootless_kill_the_keeper(seed: int, user: tuple[str, Path], machine: Machine) -> None:
    """The keeper killed at a seeded moment from when ``up`` records it: while
    ``up`` builds, or once the playground runs."""
    with chaos("keeper", seed, Actor(user), machine) as case:
        delay, up_first = case.rng.uniform(0.0, KEEPER_TO_READY_S), case.rng.random() < 0.5
        up = case.actor.popen("up", "--detach", "--name", case.seen.name)
        keeper = _keeper(case, up)
        case.seen.look()
        if keeper is not None:
            time.sleep(delay)
            case.seen.look()
            when = "while `up` ran" if up.poll() is None else "after `up` ended"
            _kill(*keeper)
            case.step(
                f"kill -9 of the keeper (pid {keeper[0]}) {delay:.3f} s after it was made, {when}"
            )
        _, err = up.communicate(timeout=COMMAND_TIMEOUT_S)
        case.step(f"`up` exited with {up.returncode}")
        # `up` may fail once its keeper is gone, but in one sentence
        case.check_said("up", up.returncode, err, tuple(range(256)))
        case.seen.look()
        case.check_status(running=False, killed=set() if keeper is None else {keeper[0]})
        case.finish(up_first=up_first, up_expect=(0,))


@pytest.mark.parametrize("up_first", [False, True], ids=["down", "up-then-down"])
def test_rootless_kill_the_keeper_of_a_playground_in_use(
    up_first: bool, user: tuple[str, Path], machine: Machine
) -> None:
    """The keeper killed while a program started by ``netplay exec`` runs in a
    host: that program is the playground's too."""
    with chaos("keeperuse", int(up_first), Actor(user), machine) as case:
        if not _up(case):
            return
        case.step("netplay exec h1 -- sleep 300, in the background")
        program = case.actor.popen("exec", "--name", case.seen.name, "h1", "--", "sleep", "300")
        pid = None
        try:
            pid = case.actor.netplay_pid(program)
            while pid is not None and program.poll() is None and _cmdline(pid)[:6] != "sleep ":
                time.sleep(0.005)  # exec becomes the program once it is in the host
            case.seen.look()
            keeper = _keeper(case)
            assert keeper is not None, "the state file of a rootless playground names no keeper"
            case.step(f"kill -9 of the keeper (pid {keeper[0]})")
            _kill(*keeper)
            case.check_status(running=False, killed={keeper[0]})
            case.finish(up_first=up_first, up_expect=(0,))
        finally:
            if pid is not None:
                _kill(pid, None)
            program.communicate(timeout=COMMAND_TIMEOUT_S)
