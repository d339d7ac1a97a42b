"""up, down, crashes and several playgrounds: nothing is left behind."""

from __future__ import annotations

import os
import random
import re
import selectors
import signal
import subprocess
import sys
from ipaddress import ip_network
from pathlib import Path

import pytest

from netplay import AlreadyRunningError, NotRunningError, Playground, fabric
from netplay.fabric import _procs

pytestmark = pytest.mark.needs_playground

NETPLAY = [sys.executable, "-m", "netplay"]


def snapshot() -> dict[str, object]:
    """What the machine has that a playground could leave behind."""

    def out(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    mounts = sorted(
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
    )
    return {
        "netns": sorted(out(["ip", "netns", "list"]).split()),
        "links": sorted(
            line.split(":")[1].strip() for line in out(["ip", "-o", "link"]).splitlines()
        ),
        "mounts": mounts,
        "nft": out(["nft", "list", "ruleset"]),
        "run_netplay": sorted(os.listdir("/run/netplay")) if os.path.isdir("/run/netplay") else [],
    }


def _pins(name: str) -> tuple[list[Path], set[int]]:
    state = fabric.read_state(fabric.Paths.of(name))
    assert state is not None and state.pins, f"the state file of {name} names no pins"
    assert fabric.Paths.of(name).state == Path(f"/run/netplay/{name}/state.json")
    pins = [Path(p) for p in state.pins]
    return pins, {os.stat(p).st_ino for p in pins if p.name.endswith(".net")}


def test_down_leaves_nothing() -> None:
    before = snapshot()
    pg = Playground.up("book", name="clean")
    pins, inodes = _pins("clean")
    server = pg.host("www").popen(["sleep", "300"])
    pg.down()
    server.wait(timeout=5)
    assert snapshot() == before
    assert not any(p.exists() for p in pins)
    assert _procs.in_namespaces(inodes) == []
    pg.down()  # idempotent
    assert snapshot() == before


def _foreground_up(name: str) -> subprocess.Popen[str]:
    """``netplay up`` in the foreground (console), returned once it says it is up."""
    up = subprocess.Popen(
        [*NETPLAY, "up", "--name", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert up.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(up.stdout, selectors.EVENT_READ)
        said = up.stdout.readline() if selector.select(30) else ""
    if "is up" not in said:
        _kill_9(up)
        raise AssertionError(f"`netplay up --name {name}` did not say it is up: {said!r}")
    return up


def _kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def test_kill_9_of_up_then_down_leaves_nothing() -> None:
    before = snapshot()
    up = _foreground_up("crash")
    pins, inodes = _pins("crash")
    pg = Playground.attach("crash")
    runner = pg.host("h1").popen(["sleep", "300"])
    _kill_9(up)
    with pytest.raises(NotRunningError, match="not running"):
        Playground.attach("crash")
    result = subprocess.run([*NETPLAY, "down", "--name", "crash"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    runner.wait(timeout=5)
    assert snapshot() == before
    assert _procs.in_namespaces(inodes) == []
    assert not any(p.exists() for p in pins)


def test_up_after_a_crash_cleans_first() -> None:
    _kill_9(_foreground_up("again"))
    with Playground.up("book", name="again") as pg:
        assert pg.host("h1").run(["ping", "-c1", "-W2", "www"]).returncode == 0


def test_two_playgrounds_at_once() -> None:
    with Playground.up("book", name="one") as one:
        two = Playground.up("book", name="two")
        try:
            assert set(Playground.names()) >= {"one", "two"}
            with pytest.raises(AlreadyRunningError):
                Playground.up("book", name="two")
        finally:
            two.down()
        result = one.host("h1").run(["ping", "-c", "1", "-W", "2", "www"])
        assert result.returncode == 0
        assert "two" not in Playground.names()


def test_generated_topologies_route_end_to_end() -> None:
    with Playground.up("line:20", name="line") as pg:
        far = pg.host("h1").run(["ping", "-c", "1", "-W", "2", "10.64.0.20"])
        assert far.returncode == 0, far.stdout
        back = pg.host("h20").run(["ping", "-6", "-c", "1", "-W", "2", "fd6e:7000:ffff::1"])
        assert back.returncode == 0, back.stdout
    with Playground.up("star:5", name="star") as pg:
        assert pg.host("h1").run(["ping", "-c", "1", "-W", "2", "h5"]).returncode == 0


def _reach(pg: Playground, pairs: list[tuple[int, int]], v4: str, v6: str) -> None:
    """Host a pings host b by both families, ``v4``/``v6`` being b's network.

    The first packet waits for neighbour discovery at every hop, and a lost
    solicitation costs it a second: ping sends again each second until a
    reply or the deadline (a CI run once lost the first over 250 hops)."""
    for a, b in pairs:
        for net in (ip_network(v4), ip_network(v6)):
            reply = pg.host(f"h{a}").run(["ping", "-c", "1", "-w", "10", str(net[b])])
            assert reply.returncode == 0, f"h{a} -> h{b}: {reply.stdout}{reply.stderr}"


def test_a_line_of_hundreds_of_routers_routes_end_to_end_and_goes() -> None:
    before = snapshot()
    count = 250  # the longest line whose ends reach each other (TTL 255)
    rng = random.Random(count)
    pairs = [(1, count), (count, 1)] + [
        (rng.randint(1, count), rng.randint(1, count)) for _ in range(6)
    ]
    with Playground.up(f"line:{count}", name="line", services=False) as pg:
        for host in range(1, count + 1, 7):  # up once up returns: the kernel took their carrier
            links = pg.host(f"h{host}").run(["ip", "-o", "link", "show", "type", "veth"])
            states = re.findall(r"state (\S+)", links.stdout)
            assert states and set(states) == {"UP"}, f"h{host}: {links.stdout}"
        _reach(pg, pairs, "10.64.0.0/10", "fd6e:7000:ffff::/64")
    assert snapshot() == before


def test_a_lan_of_more_hosts_than_a_bridge_takes() -> None:
    """star:1100 is a switch of two bridges: hosts 1..1000 on the first.

    As they come up, 1,100 hosts report some 6,600 multicast listenings: a
    switch flooding them would hand each host thousands of frames."""
    before = snapshot()
    pairs = [(1, 1100), (1100, 1), (1001, 2), (1050, 1099)]
    with Playground.up("star:1100", name="star", services=False) as pg:
        received = pg.host("h9").run(["cat", "/sys/class/net/eth0/statistics/rx_packets"])
        assert int(received.stdout) < 100
        _reach(pg, pairs, "10.0.0.0/16", "fd6e:7000:fffe::/64")
    assert snapshot() == before


def test_more_namespaces_than_open_files_allow_is_one_sentence() -> None:
    """The build holds an fd of every namespace: past the hard limit, up says so."""
    before = snapshot()
    up = [sys.executable, "-m", "netplay", "up", "line:300", "--name", "fds", "--detach"]
    limited = (
        "import os, resource, sys; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400)); "
        f"os.execv(sys.executable, {up!r})"
    )
    result = subprocess.run(
        [sys.executable, "-c", limited], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 10, result.stderr
    assert "300 namespaces need 556 open files at once" in result.stderr
    assert "ulimit -n" in result.stderr and "Traceback" not in result.stderr
    assert snapshot() == before


def test_mtu_of_a_custom_topology(tmp_path: Path) -> None:
    spec = tmp_path / "mtu.toml"
    spec.write_text(
        """
[hosts.a]
routes = [{ to = "default", via = "10.0.1.1" }]
[hosts.r]
forward = true
[hosts.b]
routes = [{ to = "default", via = "10.0.2.1" }]
[lans.left.hosts]
a = ["10.0.1.2/24"]
r = ["10.0.1.1/24"]
[lans.right]
mtu = 1400
[lans.right.hosts]
r = ["10.0.2.1/24"]
b = ["10.0.2.2/24"]
"""
    )
    with Playground.up(str(spec)) as pg:
        assert pg.name == "mtu"
        mtus = {i.network: i.mtu for h in pg.status().hosts for i in h.interfaces}
        assert mtus == {"left": 1500, "right": 1400}
        ok = pg.host("a").run(["ping", "-M", "do", "-s", "1372", "-c", "1", "-W", "2", "10.0.2.2"])
        big = pg.host("a").run(["ping", "-M", "do", "-s", "1400", "-c", "1", "-W", "2", "10.0.2.2"])
        assert ok.returncode == 0 and big.returncode != 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_foreground_up_told_to_end_tears_down(sig: signal.Signals) -> None:
    before = snapshot()
    up = _foreground_up("told")
    up.send_signal(sig)
    _out, err = up.communicate(timeout=30)
    assert up.returncode == 128 + sig, err
    assert "told" not in Playground.names()
    assert snapshot() == before


def test_of_two_simultaneous_ups_of_one_name_one_wins() -> None:
    racers = [
        subprocess.Popen(
            [*NETPLAY, "up", "--detach", "--name", "race"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        results = sorted((p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in racers)
        (won, _), (lost, said) = results
        assert (won, lost) == (0, 5), results
        assert said.startswith("netplay: a playground named 'race' is already running")
    finally:
        Playground.remove("race")
        for racer in racers:
            racer.communicate()


def test_run_netns_goes_with_the_last_playground_that_needed_it() -> None:
    """/run/netns, made by one of two overlapping playgrounds, goes with the
    last of them, whichever made it (and stays if netplay did not make it)."""
    existed = os.path.isdir("/run/netns")
    first = Playground.up("star:2", name="over1", services=False)
    second = Playground.up("star:2", name="over2", services=False)
    first.down()
    assert os.path.isdir("/run/netns")  # the second one's links are in it
    second.down()
    assert os.path.isdir("/run/netns") == existed


@pytest.mark.skipif(os.geteuid() != 0, reason="/run is root's")
def test_up_on_a_fresh_machine() -> None:
    """Neither /run/netplay nor /run/netns exists yet: `up` makes both (it
    once removed the first, held, before writing in it), `down` removes both."""
    script = (
        "mount -t tmpfs fresh /run"
        " && netplay up --detach --name fresh1 line:2"
        " && netplay exec --name fresh1 h1 -- ping -c1 -W5 10.64.0.2"
        " && netplay down --purge --name fresh1"
        " && echo left: && ls -AR /run"
    )
    done = _in_a_mount_namespace_of_its_own(script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("left:\n/run:\n"), done.stdout


def _in_a_mount_namespace_of_its_own(script: str) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` (netplay on its PATH) in a private mount namespace,
    where it may mount over /run without the machine seeing it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="/run is root's")
def test_a_runtime_directory_that_is_a_mount_of_its_own() -> None:
    """/run/netplay may be a filesystem of its own (a tmpfs where /run is a
    disk): what the hosts get from it (the CA bundles over the machine's) is
    still theirs, they see none of the playgrounds' states in it (netplay.testing's
    data directory is in it: a host sees its own certificate there), and no pin
    of another playground (made before the tmpfs, so under it) goes into their
    mount namespaces."""
    script = (
        "mkdir -p /run/netplay && mount -t tmpfs -o mode=0700 own /run/netplay"
        " && netplay up --detach --name ownrun line:2"
        " && netplay exec --name ownrun h1 -- sh -ec"
        ' \'grep -q "the netplay playground" /etc/ssl/certs/ca-certificates.crt'
        " && test ! -e /run/netplay/ownrun && test ! -e /run/netplay/covered"
        " && ! grep -q nsfs /proc/self/mountinfo'"
        " && netplay down --purge --name ownrun"
        " && echo left: && ls -A /run/netplay"
    )
    with Playground.up("line:2", name="covered"):  # its pins: under the tmpfs
        done = _in_a_mount_namespace_of_its_own(script)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("left:\n"), done.stdout


# forks, and the child, no child of the test's process, ignores SIGTERM and says its pid
STUBBORN = r"""
import os, signal, sys, time
if os.fork():
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(os.getpid(), flush=True)
sys.stdout.close()
time.sleep(60)
"""


def test_a_relative_data_directory_is_taken_from_where_netplay_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services run in / (as daemons do), so the paths they are given
    must not depend on the directory ``up`` was run in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETPLAY_DATA_DIR", "kept")
    assert fabric.Paths.of("rel").data == tmp_path / "kept" / "rel"


def test_terminate_returns_once_what_it_killed_has_ended() -> None:
    """A process that ignores SIGTERM is killed after the grace, and terminate
    returns only once it has ended: not this process's child, so not reaped here."""
    with subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE) as parent:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
    start = _procs.start_time(pid)
    try:
        assert _procs.alive(pid, start)
        _procs.terminate([pid], grace=0.2)
        assert not _procs.alive(pid, start)
    finally:  # nothing left if it failed
        if _procs.alive(pid, start):
            os.kill(pid, signal.SIGKILL)
