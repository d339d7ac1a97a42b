"""Mail benchmark: our IMAP, POP3 and SMTP against Dovecot and Postfix on the same host and store.

In the book playground, in one run:

- the store: brandon's INBOX on mail, and those of ten users bench0-bench9
  (one for each POP3 client: a POP3 session locks its maildrop), filled
  with ``--messages`` messages (the four samples, and text messages of 2 to
  40 kB), then given to the user ``mail``, as the classic daemons' engines
  give it (their mail processes never run as root); ours run as root and
  read and write the same files;
- ours: mail's IMAP on 993 and POP3 on 995 (implicit TLS), each taking up
  to 256 connections from one address (h1-h3 share modemA's);
- the reference: Dovecot (Debian's dovecot-imapd and dovecot-pop3d),
  started on mail with a configuration in a temporary directory (nothing
  in /etc), on ports 10993 and 10995 with mail's certificate, as many
  connections from one user and address allowed; and for SMTP, Postfix, the
  ``postfix`` engine of a second smtp service on mail, port 10025;
- the load: clients spread over h1-h4 (an asyncio process on each host),
  each logged in once (not timed: ours checks a scrypt hash, the reference
  a static password) and then, from one moment for all, repeating one
  operation for ``--time`` seconds: IMAP ``FETCH 1:* (BODY.PEEK[])`` (whole messages), ``FETCH 1:*
  (BODY.PEEK[HEADER])`` (headers) and ``SEARCH BODY ...``, with 10 and 100
  clients; POP3 RETR of every message in turn, with 10 clients.

Operations per second are the medians of ``--repeat`` runs, the servers
alternating; each row prints the ratio (target: at least 0.5 of Dovecot).
SMTP: 10 clients deliver to brandon for ``--time`` seconds, each message
durable before its 250 (ours: delivered and fsynced; Postfix: its queue
file fsynced, delivered after): deliveries per second, ours on 25 against
Postfix on 10025.  Run as root with Dovecot and Postfix installed
(``apt-get install dovecot-imapd dovecot-pop3d postfix``, as ``install.sh
--test`` does):

    python3 benchmarks/mail.py
    python3 benchmarks/mail.py --time 10 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netplay import Playground
from netplay.mail import sample_messages
from netplay.topology import Service, Topology, User, load

TARGET_RATIO = 0.5
HOSTS = ("h1", "h2", "h3", "h4")
OURS = {"imap": 993, "pop3": 995}
DOVECOT = {"imap": 10993, "pop3": 10995}
SMTP = {"netplay": 25, "postfix": 10025}
READY_S = 15.0
LOGIN_S = 1.0  # the clock starts this long after the clients do, and
LOGIN_EACH_S = 0.06  # this long more for each (a login costs a scrypt here)
POP3_USERS = 10  # bench0..bench9: one maildrop for each POP3 client
MAIL_USER = "mail"  # whom the classic daemons' engines give the store (Debian's)

CLIENT = r"""
import asyncio, json, re, ssl, sys, time
protocol, port, operation = sys.argv[1], int(sys.argv[2]), sys.argv[3]
clients, first = int(sys.argv[4]), int(sys.argv[5])
start, seconds = float(sys.argv[6]), float(sys.argv[7])
LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
ctx = ssl.create_default_context()

async def connect():
    return await asyncio.open_connection("mail.example.com", port, ssl=ctx)

async def imap(number):
    reader, writer = await connect()
    await reader.readline()
    tags = iter(range(1, 1 << 30))
    async def command(text):
        tag = f"t{next(tags)}".encode()
        writer.write(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            found = LITERAL.search(line)
            if found:
                await reader.readexactly(int(found.group(1)))
            elif line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line)
                return
    await command("LOGIN brandon abc123")
    await command("EXAMINE INBOX")
    await asyncio.sleep(max(0.0, start - time.time()))  # every client logged in: go
    done = 0
    while time.time() < start + seconds:
        await command(operation)
        done += 1
    writer.close()
    return done

async def pop3(number):
    reader, writer = await connect()
    await reader.readline()
    async def command(text, multi=False):
        writer.write(text.encode() + b"\r\n")
        first = await reader.readline()
        if not first.startswith(b"+OK"):
            raise RuntimeError(first)
        if multi:
            while (line := await reader.readline()) != b".\r\n":
                if not line:
                    raise ConnectionError("closed")
        return first
    await command(f"USER bench{number}")  # a maildrop each: a POP3 session locks its own
    await command("PASS abc123")
    count = int((await command("STAT")).split()[1])
    await asyncio.sleep(max(0.0, start - time.time()))
    done = 0
    while time.time() < start + seconds:
        await command(f"RETR {done % count + 1}", multi=True)
        done += 1
    writer.close()
    return done

async def smtp(number):
    reader, writer = await asyncio.open_connection("mail.example.com", port)
    async def reply():
        while (line := await reader.readline())[3:4] == b"-":
            pass
        if not line[:1] in b"23":
            raise RuntimeError(line)
    await reply()
    writer.write(b"EHLO bench\r\n"); await reply()
    body = b"Subject: benchmark\r\n\r\n" + b"x" * 78 + b"\r\n" * 25
    await asyncio.sleep(max(0.0, start - time.time()))
    done = 0
    while time.time() < start + seconds:
        writer.write(b"MAIL FROM:<bench@h1.example.com>\r\n")
        writer.write(b"RCPT TO:<brandon@example.com>\r\nDATA\r\n")
        await reply(); await reply(); await reply()
        writer.write(body + b".\r\n")
        await reply()
        done += 1
    writer.close()
    return done

async def main():
    run = {"imap": imap, "pop3": pop3, "smtp": smtp}[protocol]
    counts = await asyncio.gather(*(run(first + i) for i in range(clients)))
    print(json.dumps(sum(counts)))

asyncio.run(main())
"""

DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = /dev/stderr
protocols = imap pop3
listen = *, ::
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain
first_valid_uid = 1
passdb {{
  driver = static
  args = password=abc123
}}
userdb {{
  driver = static
  args = uid={user} gid={user} home={store}/%u mail=maildir:{store}/%u
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
protocol pop3 {{
  mail_max_userip_connections = 1000
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {imap}
  }}
  process_min_avail = 4
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {pop3}
  }}
  process_min_avail = 4
}}
"""


def topology() -> Topology:
    """The book, its mail servers taking every client of the load: h1-h3 are behind
    one NAT address, and each server gives one address 16 connections by default;
    and on mail, Postfix beside our SMTP."""
    book = load("book")
    postfix = Service(kind="smtp", name="smtp-postfix", engine="postfix", ports=(SMTP["postfix"],))

    def roomy(service: Service) -> Service:
        if service.kind not in ("imap", "pop3"):
            return service
        options = {**service.options, "max_per_client": 256, "max_connections": 1024}
        return dataclasses.replace(service, options=options)

    hosts = tuple(
        dataclasses.replace(
            h, services=(*map(roomy, h.services), *([postfix] if h.name == "mail" else []))
        )
        for h in book.hosts
    )
    users = book.users + tuple(User(name=f"bench{i}", password="abc123") for i in range(POP3_USERS))
    return dataclasses.replace(book, hosts=hosts, users=users)


def fill(pg: Playground, count: int) -> Path:
    """brandon's INBOX and each bench user's with ``count`` messages, the mail
    user's, as the classic daemons want it; the directory of the users' stores."""
    from netplay.mail import MailStore

    store = MailStore(pg.paths.service_data / "mail")
    samples = sample_messages("brandon", "example.com")
    messages = samples + [
        f"From: bench@h1.example.com\r\nSubject: report {i}\r\n\r\n".encode()
        + f"line of message {i}: netplay mail benchmark text\r\n".encode() * (40 * (1 + i % 20))
        for i in range(len(samples), count)
    ]
    user = pwd.getpwnam(MAIL_USER)
    for name in ["brandon", *(f"bench{i}" for i in range(POP3_USERS))]:
        box = store.of(name)
        for message in messages[len(list(box.messages())) :]:
            box.deliver(message)
        for path in [box.root, *box.root.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
    for parent in store.dir.parents:  # Dovecot's user must get through to it
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    store.dir.chmod(store.dir.stat().st_mode | 0o011)
    return store.dir


def run_clients(
    pg: Playground, protocol: str, port: int, operation: str, clients: int, seconds: int
) -> float:
    """Operations per second of ``clients`` clients spread over h1-h4, counted from a
    moment when all should have logged in (a login is not what is measured)."""
    start = time.time() + LOGIN_S + clients * LOGIN_EACH_S
    procs = []
    first = 0
    for i, host in enumerate(HOSTS):
        share = clients // len(HOSTS) + (1 if i < clients % len(HOSTS) else 0)
        if share:
            argv = [sys.executable, "-c", CLIENT, protocol, str(port), operation]
            argv += [str(share), str(first), str(start), str(seconds)]
            procs.append(pg.host(host).popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            first += share
    total = 0
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            logged = {OURS["imap"]: "imap", OURS["pop3"]: "pop3", SMTP["netplay"]: "smtp"}
            logged[SMTP["postfix"]] = "smtp-postfix"
            references = {SMTP["postfix"]: "postfix", **dict.fromkeys(DOVECOT.values(), "dovecot")}
            server = references.get(port, "netplay")
            log = "".join(pg.logs(f"mail/{logged[port]}", lines=10)) if port in logged else ""
            message = f"a client of {server}'s {protocol} on {port} failed: {err.decode()[-300:]}"
            raise SystemExit(f"mail.py: {message}\n{log}")
        total += int(json.loads(out.decode().splitlines()[-1]))
    return total / seconds if seconds else float(total)


def start_dovecot(pg: Playground, directory: Path, store: Path) -> object:
    cert, key = pg.pki.server("mail")
    for sub in ("run", "state"):
        (directory / sub).mkdir(mode=0o755)
    conf = directory / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            dir=directory, cert=cert, key=key, user=MAIL_USER, store=store,
            imap=DOVECOT["imap"], pop3=DOVECOT["pop3"],
        )
    )  # fmt: skip
    proc = pg.host("mail").popen(["dovecot", "-F", "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_S
    while True:  # one real exchange on each: a login and a sync of the folder
        try:
            run_clients(pg, "imap", DOVECOT["imap"], "NOOP", 1, 0)
            run_clients(pg, "pop3", DOVECOT["pop3"], "", POP3_USERS, 0)
            return proc
        except SystemExit:
            if time.monotonic() > deadline:
                proc.terminate()
                raise SystemExit(f"mail.py: Dovecot did not answer in {READY_S:g} s") from None
            time.sleep(0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=5, help="seconds of load per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each server")
    parser.add_argument("--messages", type=int, default=50, help="messages in the INBOX")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("mail.py: run as root", file=sys.stderr)
        return 2
    for command, package in (("dovecot", "dovecot-imapd dovecot-pop3d"), ("postfix", "postfix")):
        if shutil.which(command) is None:
            print(f"mail.py: {command} is missing (apt-get install {package})", file=sys.stderr)
            return 2
    rows = [
        ("IMAP FETCH whole, 10 clients", "imap", "FETCH 1:* (BODY.PEEK[])", 10),
        ("IMAP FETCH whole, 100 clients", "imap", "FETCH 1:* (BODY.PEEK[])", 100),
        ("IMAP FETCH headers, 10 clients", "imap", "FETCH 1:* (BODY.PEEK[HEADER])", 10),
        ("IMAP FETCH headers, 100 clients", "imap", "FETCH 1:* (BODY.PEEK[HEADER])", 100),
        ("IMAP SEARCH, 10 clients", "imap", "SEARCH BODY needle", 10),
        ("IMAP SEARCH, 100 clients", "imap", "SEARCH BODY needle", 100),
        ("POP3 RETR, 10 clients", "pop3", "", 10),
    ]
    name = f"mailbench{os.getpid()}"
    results = []
    with (
        Playground.up(topology(), name=name, purge=True) as pg,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.chmod(tmp, 0o755)
        store = fill(pg, args.messages)
        dovecot = start_dovecot(pg, Path(tmp), store)
        try:
            for label, protocol, operation, clients in rows:
                ours, theirs = [], []
                for _ in range(args.repeat):
                    for port, figures in ((OURS, ours), (DOVECOT, theirs)):
                        load = (protocol, port[protocol], operation, clients, args.time)
                        figures.append(run_clients(pg, *load))
                results.append((label, statistics.median(ours), statistics.median(theirs)))
                a, b = results[-1][1:]
                verdict = "ok" if a / b >= TARGET_RATIO else f"UNDER {TARGET_RATIO}"
                figures = f"netplay {a:>8.1f}/s  dovecot {b:>8.1f}/s  ratio {a / b:.2f}x"
                print(f"{label:34} {figures}  {verdict}", flush=True)
        finally:
            dovecot.terminate()  # type: ignore[attr-defined]
            dovecot.wait()  # type: ignore[attr-defined]
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(run_clients(pg, "smtp", SMTP["netplay"], "", 10, args.time))
            theirs.append(run_clients(pg, "smtp", SMTP["postfix"], "", 10, args.time))
        a, b = statistics.median(ours), statistics.median(theirs)
        verdict = "ok" if a / b >= TARGET_RATIO else f"UNDER {TARGET_RATIO}"
        figures = f"netplay {a:>8.1f}/s  postfix {b:>8.1f}/s  ratio {a / b:.2f}x"
        print(f"{'SMTP deliveries, 10 clients':34} {figures}  {verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
