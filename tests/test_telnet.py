"""The telnet engine with real clients: telnetlib3's client, and Debian's telnet on a pty.

A playground of three hosts on one LAN: ``server`` runs telnet (with a short
delay after a wrong password and a short login timeout, so that the tests
are fast), ``client`` and ``other`` are two clients with addresses of their
own (a hostile one and a good one).  Every client runs inside its host and
logs in as the topology's ``brandon``, a real account of the server host.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from _net import run_json
from netplay import Playground, ServiceState, Spawned
from netplay.topology import loads

SERVER, CLIENT, OTHER = "10.9.0.1", "10.9.0.2", "10.9.0.3"
IDENT = "server/telnet"
FAIL_DELAY_S = 0.3
LOGIN_TIMEOUT_S = 5
TOPOLOGY = loads(
    f"""
name = "telnettest"
domain = "telnettest.test"

[hosts.server]
services = [{{ kind = "telnet", fail_delay = {FAIL_DELAY_S}, login_timeout = {LOGIN_TIMEOUT_S} }}]

[hosts.client]

[hosts.other]

[lans.lan.hosts]
server = ["{SERVER}/24"]
client = ["{CLIENT}/24"]
other = ["{OTHER}/24"]

[users.brandon]
password = "abc123"
""",
    source="test_telnet",
)

pytestmark = [pytest.mark.needs_playground, pytest.mark.netplay_topology(TOPOLOGY)]

# telnetlib3's client: log in, run one command line, read to the end
TELNETLIB3 = r"""
import asyncio, json, sys, telnetlib3
address, user, password, command, term = sys.argv[1:6]
cols, rows = int(sys.argv[6]), int(sys.argv[7])

async def until(reader, text, seen):
    while text not in seen[0]:
        data = await asyncio.wait_for(reader.read(4096), 20)
        if not data:
            raise SystemExit(f"closed before {text!r}: {seen[0]!r}")
        seen[0] += data
    before, _, seen[0] = seen[0].partition(text)
    return before

async def main():
    reader, writer = await telnetlib3.open_connection(
        address, 23, term=term, cols=cols, rows=rows, connect_minwait=0.1, connect_timeout=10
    )
    seen = [""]
    banner = await until(reader, "login: ", seen)
    writer.write(user + "\r\n")
    await until(reader, "Password: ", seen)
    writer.write(password + "\r\n")
    writer.write(command + "\r\n")
    rest = seen[0]
    while data := await asyncio.wait_for(reader.read(4096), 20):
        rest += data
    print(json.dumps({"banner": banner, "rest": rest}))

asyncio.run(main())
"""


def _telnetlib3(
    pg: Playground,
    command: str,
    *,
    password: str = "abc123",
    term: str = "xterm-256color",
    size: tuple[int, int] = (132, 43),
    host: str = "client",
) -> dict[str, str]:
    said = run_json(
        pg.host(host), TELNETLIB3, SERVER, "brandon", password, command, term, *size, timeout=60
    )
    return {str(k): str(v) for k, v in said.items()}


def _between(text: str, start: str, end: str) -> list[str]:
    """The lines between two markers' lines, without terminal escapes, CR or NUL."""
    found = re.search(f"{start}\r?\n(.*?){end}", text, re.S)
    assert found, text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|[\r\0]", "", found[1])
    return [line.strip() for line in plain.split("\n") if line.strip()]


def _unchanged(pg: Playground) -> None:
    now = pg.service(IDENT)
    assert (now.state, now.restarts) == (ServiceState.RUNNING, 0), "".join(pg.logs(IDENT, lines=30))


def test_telnetlib3_logs_in_and_the_shell_has_its_term_size_and_user(
    shared_playground: Playground,
) -> None:
    said = _telnetlib3(
        shared_playground,
        "echo BE''GIN; echo $TERM; stty size; id -un; echo $HOME $LOGNAME; echo E''ND; exit",
    )
    assert "server login: " not in said["rest"]
    assert _between(said["rest"], "BEGIN", "END") == [
        "xterm-256color",
        "43 132",
        "brandon",
        "/home/brandon brandon",
    ]
    _unchanged(shared_playground)


# A dialogue with telnetlib3's client in bytes: each step waits for a text, then sends
# bytes; then everything to the end of the connection, and when each step's text came.
DIALOGUE = r"""
import asyncio, base64, json, sys, time, telnetlib3
address, steps = sys.argv[1], json.loads(sys.argv[2])

async def main():
    start = time.monotonic()
    reader, writer = await telnetlib3.open_connection(
        address, 23, encoding=False, term="vt220", connect_minwait=0.1, connect_timeout=10
    )
    seen, at, times = b"", 0, []
    for wanted, send in steps:
        wanted = base64.b64decode(wanted)
        while seen.find(wanted, at) < 0:
            data = await asyncio.wait_for(reader.read(4096), 30)
            if not data:
                raise SystemExit(f"closed before {wanted!r}: {seen!r}")
            seen += data
        at = seen.find(wanted, at) + len(wanted)
        times.append(time.monotonic() - start)
        writer.write(base64.b64decode(send))
    while data := await asyncio.wait_for(reader.read(4096), 30):
        seen += data
    times.append(time.monotonic() - start)
    print(json.dumps({"said": base64.b64encode(seen).decode(), "times": times}))

asyncio.run(main())
"""


def _dialogue(
    pg: Playground, *steps: tuple[bytes, bytes], host: str = "client"
) -> tuple[bytes, list[float]]:
    """What the server said in a dialogue of (wait for, then send) steps, to its end,
    and when each step's text came (the last: when the connection closed)."""
    import base64

    encoded = [[base64.b64encode(a).decode(), base64.b64encode(b).decode()] for a, b in steps]
    said = run_json(pg.host(host), DIALOGUE, SERVER, json.dumps(encoded), timeout=90)
    return base64.b64decode(said["said"]), [float(t) for t in said["times"]]


LOGIN = ((b"login: ", b"brandon\r\n"), (b"Password: ", b"abc123\r\n"))


def test_wrong_passwords_are_slowed_down_and_the_third_closes(
    shared_playground: Playground,
) -> None:
    wrong = [(b"login: ", b"brandon\r\n"), (b"Password: ", b"wrong\r\n")]
    said, times = _dialogue(shared_playground, *wrong * 3)
    assert said.count(b"\r\nLogin incorrect\r\n") == 3
    assert said.endswith(b"Maximum number of tries exceeded (3)\r\n")
    assert said.count(b"server login: ") == 3 and b"wrong" not in said  # the password unechoed
    assert times[-1] - times[-2] >= FAIL_DELAY_S
    assert times[2] - times[1] >= FAIL_DELAY_S  # each failure waits before the next prompt
    _unchanged(shared_playground)


def test_a_user_not_of_the_topology_is_refused_as_a_wrong_password_is(
    shared_playground: Playground,
) -> None:
    for name in (b"root", b"nobody", b"nosuchuser"):
        said, _ = _dialogue(
            shared_playground,
            (b"login: ", name + b"\r\n"),
            (b"Password: ", b"abc123\r\n"),
            (b"Login incorrect\r\n", b"\x04"),  # ^D at the prompt: end of file, good-bye
        )
        assert b"$ " not in said
    logged = "".join(shared_playground.logs(IDENT, lines=20))
    assert "failed login for 'nosuchuser' from 10.9.0.2" in logged


def test_the_login_times_out(shared_playground: Playground) -> None:
    said, times = _dialogue(shared_playground, (b"login: ", b"brandon"))
    assert said.endswith(f"\r\nLogin timed out after {LOGIN_TIMEOUT_S} seconds.\r\n".encode())
    assert LOGIN_TIMEOUT_S - 1 < times[-1] < LOGIN_TIMEOUT_S + 5


def test_bytes_pass_both_ways_iac_escaped_and_cr_as_telnetd_has_it(
    shared_playground: Playground,
) -> None:
    """0xFF goes both ways (doubled as IAC IAC on the wire, one byte at each end);
    CR LF and CR NUL from the client are CR in the pty; a bare CR from the pty
    comes as CR NUL."""
    command = (
        b"stty raw -echo; echo RE''ADY; head -c 6 | od -An -tx1; "
        b"printf 'A\\377B\\rC\\n'; stty sane\r\n"
    )
    said, _ = _dialogue(
        shared_playground,
        *LOGIN,
        (b"$ ", command),
        (b"READY\n", b"a\r\nb\r\0\xff\xfe"),  # the terminal is raw: no ICRNL
        (b"A\xffB\r\0C\n", b"exit\r\n"),
    )
    assert b" 61 0d 62 0d ff fe" in said


def test_debian_telnet_on_a_pty_logs_in_and_follows_the_window(
    shared_playground: Playground,
) -> None:
    """Debian's telnet (inetutils-telnet), on a pty of 100x30 whose size then
    changes to 90x20 (telnet sends NAWS again, the shell gets SIGWINCH)."""
    said = run_json(shared_playground.host("client"), DEBIAN_TELNET, SERVER, timeout=90)
    text = str(said["said"])
    assert _between(text, "BEGIN", "MIDDLE") == ["vt100", "30 100", "brandon"]
    assert _between(text, "MIDDLE", "END")[-1] == "20 90"  # after the prompt, redrawn
    assert "Connection closed by foreign host." in text
    _unchanged(shared_playground)


DEBIAN_TELNET = r"""
import fcntl, json, os, pty, select, struct, sys, termios, time
address = sys.argv[1]

def size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

pid, fd = pty.fork()
if pid == 0:
    size(0, 30, 100)
    os.environ["TERM"] = "vt100"
    os.execvp("telnet", ["telnet", address])
seen = b""

def until(text, timeout=30):
    global seen
    deadline = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            raise SystemExit(f"no {text!r} in {seen!r}")
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            raise SystemExit(f"ended before {text!r}: {seen!r}")
        seen += data

until(b"login: ")
os.write(fd, b"brandon\r")
until(b"Password: ")
os.write(fd, b"abc123\r")
until(b"$ ")
os.write(fd, b"echo BE''GIN; echo $TERM; stty size; id -un; echo MID''DLE\r")
until(b"MIDDLE\r\n")
until(b"$ ")
size(fd, 20, 90)  # the kernel tells telnet (SIGWINCH), telnet the server (NAWS)
time.sleep(0.5)
os.write(fd, b"stty size; echo E''ND; exit\r")
until(b"Connection closed by foreign host.")
print(json.dumps({"said": seen.decode("utf-8", "replace")}))
"""


# Hostile clients, in the client host; a good client logs in from the other host.
HOSTILE = r"""
import asyncio, itertools, json, random, socket, sys, time
address, what, amount = sys.argv[1], sys.argv[2], int(sys.argv[3])

def connect():
    return socket.create_connection((address, 23), timeout=10)

def flood(data, read):
    sock = connect()
    sock.settimeout(5)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 65536])
            if read:
                sock.setblocking(False)
                try:
                    while sock.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
                sock.settimeout(5)
        # all of it fitted in the kernels' buffers: the server's answer is yet to come
        sock.settimeout(10)
        while sock.recv(1 << 20):
            pass
        return f"{sent} closed"
    except TimeoutError:
        return f"{sent} open"
    except OSError as exc:  # reset: a fair answer to a flood
        return f"{sent} {type(exc).__name__}"

if what == "idle":  # connect, send nothing, hold them open
    held = [connect() for _ in range(amount)]
    print("holding", len(held), flush=True)
elif what == "slow":  # one byte at a time on each, a name that never ends
    slow = [connect() for _ in range(amount)]
    for i in itertools.count():
        for sock in list(slow):
            try:
                sock.send(b"b")
            except OSError:
                slow.remove(sock)
        if i == 0:
            print("dribbling on", len(slow), flush=True)
        time.sleep(0.2)
elif what == "floods":  # garbage and telnet commands, megabytes of each
    iac = bytes([255])
    garbage = random.Random(7).randbytes(amount)
    options = b"".join(iac + bytes([c, o]) for c in (251, 252, 253, 254) for o in range(256))
    floods = {
        "garbage": (garbage, True),
        "nop": (iac + bytes([241])) * (amount // 2),
        "ayt unread": ((iac + bytes([246])) * (amount // 2), False),
        "options": (options * (amount // len(options) + 1), True),
        "subnegotiation": (iac + bytes([250, 24, 0]) + b"x" * amount + iac + bytes([240]), True),
        "escaped": ((iac + iac) * (amount // 2), True),
    }
    floods["nop"] = (floods["nop"], True)
    said = {name: flood(data, read) for name, (data, read) in floods.items()}
    print("flooded", json.dumps(said), flush=True)
elif what == "wrong":  # wrong passwords, on several connections at once, again and again
    import telnetlib3

    async def until(reader, text):
        seen = ""
        while text not in seen:
            data = await reader.read(4096)
            if not data:
                return False
            seen += data
        return True

    async def loop(first):
        while True:
            reader, writer = await telnetlib3.open_connection(address, 23, connect_minwait=0.05)
            while await until(reader, "login: "):
                if not first.done():
                    first.set_result(None)
                writer.write("brandon\r\n")
                if not await until(reader, "Password: "):
                    break
                writer.write("not-the-password\r\n")
            writer.close()

    async def main():
        first = asyncio.get_running_loop().create_future()
        tasks = [asyncio.ensure_future(loop(first)) for _ in range(amount)]
        await first
        print("guessing on", amount, flush=True)
        await asyncio.gather(*tasks)

    asyncio.run(main())
time.sleep(3600)  # holding what it has open, until stopped
"""


def _hostile(pg: Playground, spawn: Callable[..., Spawned], what: str, amount: int) -> Spawned:
    argv = [sys.executable, "-c", HOSTILE, SERVER, what, str(amount)]
    return spawn(pg.host("client"), argv, timeout=120)


def _good_client_logs_in(pg: Playground) -> None:
    said = _telnetlib3(pg, "echo BE''GIN; id -un; echo E''ND; exit", host="other")
    assert _between(said["rest"], "BEGIN", "END") == ["brandon"]


def test_300_idle_connections_do_not_keep_another_client_out(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    idle = _hostile(shared_playground, spawn, "idle", 300)
    assert idle.first_line == "holding 300"
    _good_client_logs_in(shared_playground)
    assert idle.running
    _unchanged(shared_playground)


def test_slow_clients_do_not_keep_another_client_out(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    slow = _hostile(shared_playground, spawn, "slow", 40)
    assert slow.first_line is not None and slow.first_line.startswith("dribbling on ")
    _good_client_logs_in(shared_playground)
    assert slow.running
    _unchanged(shared_playground)


def test_garbage_and_telnet_command_floods_end_those_connections_only(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    started = time.monotonic()
    cut = "a flood of telnet commands, disconnecting"
    before = "".join(shared_playground.logs(IDENT, lines=1000)).count(cut)
    floods = _hostile(shared_playground, spawn, "floods", 2 << 20)
    assert floods.first_line is not None and floods.first_line.startswith("flooded "), floods
    said: dict[str, Any] = json.loads(floods.first_line.removeprefix("flooded "))
    # the server cuts each command flood off, and says why
    commands = ("nop", "ayt unread", "options", "escaped")
    for name in commands:
        assert not said[name].endswith(" open"), said
    logged = "".join(shared_playground.logs(IDENT, lines=1000))
    assert logged.count(cut) - before >= len(commands), logged
    _good_client_logs_in(shared_playground)
    _unchanged(shared_playground)
    assert time.monotonic() - started < 100


def test_wrong_password_loops_do_not_keep_another_client_out(
    shared_playground: Playground, spawn: Callable[..., Spawned]
) -> None:
    guessing = _hostile(shared_playground, spawn, "wrong", 8)
    assert guessing.first_line == "guessing on 8"
    for _ in range(3):
        _good_client_logs_in(shared_playground)
    assert guessing.running
    _unchanged(shared_playground)
    assert "failed login for 'brandon' from 10.9.0.2" in "".join(
        shared_playground.logs(IDENT, lines=50)
    )
