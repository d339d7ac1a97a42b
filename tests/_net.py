"""Small network programs that tests run inside playground hosts.

Servers print one line once they are bound (their port), so a test starts
them with the ``spawn`` fixture (ready on that first line, kept as
``first_line``), never waiting for a fixed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

from netplay import Host

TCP_ECHO_PEER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print(s.getsockname()[1], flush=True)
for _ in range(int(sys.argv[3])):
    c, peer = s.accept()
    c.sendall(peer[0].encode())
    c.close()
"""

TCP_ASK = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
print(c.recv(100).decode())
"""

UDP_COUNT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
print(s.getsockname()[1], flush=True)
count = 0
try:
    while True:
        data, peer = s.recvfrom(2048)
        if data.startswith(b"end"):
            break
        count += 1
        s.settimeout(float(sys.argv[3]))
except TimeoutError:
    pass
print(count, flush=True)
"""

UDP_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for i in range(int(sys.argv[3])):
    s.sendto(b"datagram %d" % i, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.001)
# the end, said often enough that loss on the path cannot swallow every copy: the
# counter stops at the first instead of waiting out its timeout (where all are lost)
for _ in range(20):
    s.sendto(b"end", (sys.argv[1], int(sys.argv[2])))
"""

TCP_SINK = r"""
import socket, sys, time
s = socket.socket()
s.bind(("0.0.0.0", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
total, first = 0, None
while data := c.recv(65536):
    if first is None:
        first = time.monotonic()
    total += len(data)
print(total, time.monotonic() - first, flush=True)
"""

TCP_SEND = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
block = b"x" * 65536
left = int(sys.argv[3])
while left > 0:
    c.sendall(block[:left])
    left -= len(block)
c.close()
"""


def python(script: str, *args: object) -> list[str]:
    """The argv that runs ``script`` with ``args`` (for ``spawn``)."""
    return [sys.executable, "-c", script, *map(str, args)]


def run(
    host: Host, script: str, *args: object, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in ``host`` to completion."""
    return host.run(python(script, *args), timeout=timeout)


def run_json(host: Host, script: str, *args: object, timeout: float = 180) -> Any:
    """:func:`run` for a script that prints one JSON value last: that value (a
    failure shows its stderr)."""
    done = run(host, textwrap.dedent(script), *args, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


TLS_FAILED = "TLS failed"  # said where an UPGRADE's handshake fails, and the session ends
LINE_SESSION = r"""
import json, socket, ssl, sys
TLS_FAILED, tagged = sys.argv[4], sys.argv[5] == "tagged"
def reply():
    lines = [file.readline().decode().rstrip()]
    while tagged and lines[-1].startswith("* "):  # IMAP: up to the tagged line
        lines.append(file.readline().decode().rstrip())
    return "\n".join(lines)
name, port, steps = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
ctx = ssl.create_default_context()
sock = socket.create_connection((name, port), timeout=20)
file = sock.makefile("rb")
said = [file.readline().decode().rstrip()]
for step in steps:
    if step == "UPGRADE":
        try:
            sock = ctx.wrap_socket(sock, server_hostname=name)
        except (ssl.SSLError, OSError) as exc:
            said.append(f"{TLS_FAILED}: {exc}")
            break
        file = sock.makefile("rb")
        continue
    sock.sendall(step.encode())
    said.append(reply())
print(json.dumps(said))
"""


def line_session(host: Host, name: str, port: int, *steps: str, tagged: bool = False) -> list[str]:
    """A raw conversation with a line protocol from ``host``: the greeting, then each
    step's bytes sent and one line read back, or with ``tagged`` (IMAP) the lines
    up to the first that is not untagged (``* ``), joined by newlines.  A step of
    UPGRADE starts TLS, the certificate verified for ``name``; if that fails, the
    last line says :data:`TLS_FAILED` and why."""
    mode = "tagged" if tagged else "lines"
    said = run_json(host, LINE_SESSION, name, port, json.dumps(list(steps)), TLS_FAILED, mode)
    return [str(line) for line in said]
