"""The one table of netplay's commands, from which the command line and the console are built.

Each :class:`Command` says its name, its help, its arguments (a function
that adds them to an argparse parser) and what it does (a function of the
parsed arguments and a :class:`Session`, returning an exit status).  The
command line (:mod:`netplay.cli._main`) makes a subcommand of each; the
console of ``netplay up`` (:mod:`netplay.cli._console`) offers those marked
``console``, on its own playground, and its ``help`` lists them; so every
command and its help exist once.  Handlers write to ``session.out`` and
never print.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from netplay import Playground, ServiceState, to_data
from netplay import _progress as progress
from netplay.cli._format import describe_faults, format_list, format_service, format_status
from netplay.cli._ssh import ssh, ssh_arguments
from netplay.errors import ServiceError, UnknownHostError, UsageError
from netplay.fabric import DIRECTIONS
from netplay.pki import DEMO_USER
from netplay.services import ACTIONS


@dataclass(slots=True)
class Session:
    """Where a command writes, and the playground it works on."""

    out: TextIO
    #: the console's own playground; on the command line, found by --name
    console: Playground | None = None

    def playground(self, args: argparse.Namespace) -> Playground:
        if self.console is not None:
            return self.console
        return Playground.attach(getattr(args, "name", None))


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace, Session], int]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    description: str | None = None
    #: takes --name (which playground) on the command line
    named: bool = True
    name_help: str = "which playground (default: the only one running)"
    #: offered at the console prompt
    console: bool = True


# -- up, down, list ------------------------------------------------------------


def _up_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "topology",
        nargs="?",
        default="book",
        help="book (default), line:N, star:N, or a TOML file (see docs/topology.md)",
    )
    p.add_argument(
        "--detach", action="store_true", help="return once every service answers (no console)"
    )


class _Ended(BaseException):
    """The foreground ``up`` was told to end (SIGTERM, SIGHUP): tear down first."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _end(signum: int, _frame: object) -> None:
    raise _Ended(signum)


def _up(args: argparse.Namespace, session: Session) -> int:
    from netplay.cli._console import run_console  # the console is built from this table

    started = time.perf_counter()
    progress.show_on(sys.stderr if sys.stderr.isatty() else None)
    try:
        pg = Playground.up(args.topology, name=args.name)
    finally:
        progress.show_on(None)
    took = time.perf_counter() - started
    if args.detach:
        pg.detach()
        session.out.write(
            f"playground {pg.name} is up: {len(pg.topology.hosts)} hosts in {took:.2f} s "
            f"(netplay down --name {pg.name} removes it)\n"
        )
        return 0
    before = {sig: signal.signal(sig, _end) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        run_console(pg, session.out)
    except _Ended as ended:
        return 128 + ended.signum  # as a shell reports a command ended by a signal
    finally:
        for sig in before:  # a second signal must not cut the teardown short
            signal.signal(sig, signal.SIG_IGN)
        try:
            pg.down()
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
    return 0


def _down_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--purge", action="store_true", help="also delete its CA and certificates (kept otherwise)"
    )


def _down(args: argparse.Namespace, session: Session) -> int:
    removed = Playground.remove(args.name, purge=args.purge)
    session.out.write(f"playground {removed} removed\n" if removed else "no playground to remove\n")
    return 0


def _list(args: argparse.Namespace, session: Session) -> int:
    session.out.write(format_list(Playground.summaries()))
    return 0


# -- looking -------------------------------------------------------------------


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (docs/status.md)")


def _status(args: argparse.Namespace, session: Session) -> int:
    status = session.playground(args).status()
    if args.json:
        session.out.write(json.dumps(to_data(status), indent=2) + "\n")
    else:
        session.out.write(format_status(status))
    return 0


def _logs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", help="HOST/NAME, as `netplay status` lists them")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing what is added")
    p.add_argument("-n", "--lines", type=_count, default=None, help="only the last N lines")


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (0 or more)")
    return int(text)


def _logs(args: argparse.Namespace, session: Session) -> int:
    pieces = session.playground(args).logs(args.service, lines=args.lines, follow=args.follow)
    try:
        for piece in pieces:
            session.out.write(piece)
            session.out.flush()
    except KeyboardInterrupt:
        if session.console is None:
            raise
    return 0


def _ca_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pem", action="store_true", help="print the certificate itself")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--host", help="a host's server certificate instead (e.g. www)")
    which.add_argument(
        "--client", action="store_true", help=f"the demo user's ({DEMO_USER}) client certificate"
    )


def _ca(args: argparse.Namespace, session: Session) -> int:
    name = session.console.name if session.console is not None else args.name
    store = Playground.certificates(name)
    if args.host is not None:
        cert, key = store.server(args.host)
        # a host's own files only: not "" (the CA's), nor a path such as ../ca
        if not args.host or cert.parent != store.dir / "servers":
            raise UnknownHostError(
                f"the playground has no certificate for {args.host!r}",
                hint="see the hosts with `netplay status`",
            )
        if not cert.exists():
            # a host without services gets its certificate when a program first
            # enters it: enter it (an unknown host, or a playground down, is said)
            session.playground(args).host(args.host).run(["true"], check=True)
    elif args.client:
        cert, key = store.client()
    else:
        cert, key = store.ca, None
    if args.pem:
        session.out.write(cert.read_text())
    else:
        session.out.write("".join(f"{path}\n" for path in (cert, key) if path is not None))
    return 0


# -- changing ------------------------------------------------------------------


def _link_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--loss", help="drop this share of the packets, e.g. 20%% (see --direction)")
    p.add_argument("--rate", help="limit the rate, e.g. 1mbit or 500kbit (see --direction)")
    p.add_argument("--delay", help="delay each way, e.g. 50ms (needs the netem qdisc)")
    p.add_argument("--jitter", help="vary the delay, e.g. 10ms (needs the netem qdisc)")
    p.add_argument(
        "--direction",
        choices=DIRECTIONS,
        help="which packets loss, rate and delay apply to: both ways, out (what A "
        "sends to B) or in (what A receives from B); without it, the way the cable's "
        "faults already go (both, for its first)",
    )
    state = p.add_mutually_exclusive_group()
    state.add_argument("--down", action="store_true", help="cut the link")
    state.add_argument("--up", action="store_true", help="restore a cut link")
    p.add_argument("--clear", action="store_true", help="remove every fault first")


def _link(args: argparse.Namespace, session: Session) -> int:
    now = session.playground(args).link(
        args.a,
        args.b,
        loss=args.loss,
        rate=args.rate,
        delay=args.delay,
        jitter=args.jitter,
        down=args.down,
        up=args.up,
        clear=args.clear,
        direction=args.direction,
    )
    session.out.write(f"{args.a} <-> {args.b}: {describe_faults(now)}\n")
    return 0


def _service_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=list(ACTIONS))
    p.add_argument("service", help="HOST/NAME, as `netplay status` lists them")


def _service(args: argparse.Namespace, session: Session) -> int:
    now = session.playground(args).control(args.service, args.action)
    session.out.write(format_service(now))
    return ServiceError.exit_status if now.state is ServiceState.FAILED else 0


# -- in a host -----------------------------------------------------------------


def _exec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")


def _exec(args: argparse.Namespace, session: Session) -> int:
    _options_after_host(args)
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise UsageError("no command given", hint="e.g. netplay exec h1 -- ping -c1 www")
    session.playground(args).host(args.host).execvp(argv)


def _options_after_host(args: argparse.Namespace) -> None:
    """`netplay exec h1 --name NAME -- CMD`: take --name from before the `--` too."""
    argv = args.argv
    while argv[:1] and argv[0].startswith("-") and argv[0] != "--":
        if argv[0] == "--name" and len(argv) > 1:
            args.name, argv = argv[1], argv[2:]
        elif argv[0].startswith("--name="):
            args.name, argv = argv[0].split("=", 1)[1], argv[1:]
        elif argv[0] == "--name":
            raise UsageError("--name needs a value", hint="e.g. netplay exec --name book h1 -- ls")
        else:
            raise UsageError(
                f"unknown option {argv[0]} before the command",
                hint="e.g. netplay exec --name book h1 -- ls",
            )
    args.argv = argv


def _shell_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host")


def _shell(args: argparse.Namespace, session: Session) -> int:
    shell = os.environ.get("SHELL") or "/bin/bash"
    session.playground(args).host(args.host).execvp([shell])


COMMANDS: tuple[Command, ...] = (
    Command(
        name="up",
        help="start a playground",
        arguments=_up_arguments,
        run=_up,
        name_help="the playground's name (default: the topology's)",
        console=False,
    ),
    Command(
        name="down",
        help="stop a playground and remove all it made",
        arguments=_down_arguments,
        run=_down,
        console=False,
    ),
    Command(name="list", help="the playgrounds of this user", run=_list, named=False),
    Command(
        name="status",
        help="hosts, interfaces, addresses, links, faults and services",
        arguments=_status_arguments,
        run=_status,
    ),
    Command(
        name="exec",
        help="run a command on a host: netplay exec h1 -- CMD ...",
        arguments=_exec_arguments,
        run=_exec,
        console=False,
    ),
    Command(
        name="shell",
        help="an interactive shell on a host",
        arguments=_shell_arguments,
        run=_shell,
        console=False,
    ),
    Command(
        name="ssh",
        help="log in to a host with OpenSSH: netplay ssh www [-u USER] [-- CMD ...]",
        description="Log in to HOST's ssh service with OpenSSH's client, from this machine: "
        "as USER (default: the topology's first user), with a key pair of the playground "
        "that the command makes accepted there, and the host key checked against the "
        "playground's known_hosts file; no prompts. With a command, run it and exit with "
        "its status; without, an interactive session. See docs/login-and-files.md.",
        arguments=ssh_arguments,
        run=ssh,
        console=False,
    ),
    Command(
        name="logs",
        help="a service's log: logs www/https [-f] [-n N]",
        arguments=_logs_arguments,
        run=_logs,
    ),
    Command(
        name="service",
        help="restart, stop or start a service: service restart www/https",
        arguments=_service_arguments,
        run=_service,
    ),
    Command(
        name="ca",
        help="where the playground's CA certificate is, to trust it elsewhere",
        description="Print the path of the playground's CA certificate (kept across down; "
        "netplay down --purge deletes it). With --host or --client: the certificate and key "
        "files issued to a host or to the demo user.",
        arguments=_ca_arguments,
        run=_ca,
    ),
    Command(
        name="link",
        help="disturb the link between two hosts: link modemA isp --loss 20%%",
        description="On a point-to-point link this is the cable between A and B; on a LAN, "
        "A's cable to the switch it shares with B (B may also name the LAN). A cable's "
        "faults all go one way: both, unless --direction says otherwise, and a later "
        "change keeps that way until --direction or --clear changes it.",
        arguments=_link_arguments,
        run=_link,
    ),
)
