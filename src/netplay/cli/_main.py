"""The ``netplay`` command: argument parsing and turning errors into one sentence.

Every error is one line on stderr (``netplay: what went wrong (what to do)``)
and a distinct exit status (see :mod:`netplay.errors`); ``--debug`` adds the
traceback.  ``exec`` and ``shell`` replace this process with the command
inside the host, so stdin, the tty and the exit status pass straight through.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from netplay import __version__
from netplay._playground import Playground
from netplay.cli._console import run_console
from netplay.cli._format import describe_faults, format_list, format_status
from netplay.errors import NetplayError, ServiceError, UnknownHostError, UsageError
from netplay.pki import DEMO_USER

INTERNAL_ERROR = 70
FOLLOW_INTERVAL_S = 0.2

EPILOG = """examples:
  netplay up --detach                      start the book playground and return
  netplay exec h1 -- traceroute -n www     run a command on h1
  netplay shell h1                         an interactive shell on h1
  netplay link modemA isp --loss 20%       disturb a link (see: netplay link -h)
  netplay logs www/https -f                follow a service's log
  netplay service restart www/https        and stop, start
  netplay ca                               the CA certificate's path, to trust it elsewhere
  netplay down                             remove everything
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see `{self.prog} --help`")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netplay",
        description="A miniature Internet on this machine: hosts, routers, NAT and links "
        "in network namespaces.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"netplay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def named(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--name", help="which playground (default: the only one running)", default=None
        )

    up = sub.add_parser("up", help="start a playground")
    up.add_argument(
        "topology",
        nargs="?",
        default="book",
        help="book (default), line:N, star:N, or a TOML file (see docs/topology.md)",
    )
    up.add_argument("--name", help="the playground's name (default: the topology's)")
    up.add_argument(
        "--detach", action="store_true", help="return once the network is ready (no console)"
    )
    down = sub.add_parser("down", help="stop a playground and remove all it made")
    named(down)
    down.add_argument(
        "--purge", action="store_true", help="also delete its CA and certificates (kept otherwise)"
    )
    sub.add_parser("list", help="the playgrounds of this user")
    status = sub.add_parser("status", help="hosts, interfaces, addresses, links and faults")
    named(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    ex = sub.add_parser("exec", help="run a command on a host: netplay exec h1 -- CMD ...")
    named(ex)
    ex.add_argument("host")
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    shell = sub.add_parser("shell", help="an interactive shell on a host")
    named(shell)
    shell.add_argument("host")
    logs = sub.add_parser("logs", help="a service's log: netplay logs www/https [-f]")
    named(logs)
    logs.add_argument("service", help="HOST/NAME, as `netplay status` lists them")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing what is added")
    logs.add_argument("-n", "--lines", type=int, default=None, help="only the last N lines")
    service = sub.add_parser("service", help="restart, stop or start a service")
    named(service)
    service.add_argument("action", choices=["restart", "stop", "start"])
    service.add_argument("service", help="HOST/NAME, as `netplay status` lists them")
    ca = sub.add_parser(
        "ca",
        help="where the playground's CA certificate is, to trust it elsewhere",
        description="Print the path of the playground's CA certificate (kept across down; "
        "netplay down --purge deletes it). With --host or --client: the certificate and key "
        "files issued to a host or to the demo user.",
    )
    named(ca)
    ca.add_argument("--pem", action="store_true", help="print the certificate itself")
    which = ca.add_mutually_exclusive_group()
    which.add_argument("--host", help="a host's server certificate instead (e.g. www)")
    which.add_argument(
        "--client", action="store_true", help=f"the demo user's ({DEMO_USER}) client certificate"
    )
    link = sub.add_parser(
        "link",
        help="disturb the link between two hosts",
        description="On a point-to-point link this is the cable between A and B; on a LAN, "
        "A's cable to the switch it shares with B (B may also name the LAN). Faults apply "
        "in both directions.",
    )
    named(link)
    _link_arguments(link)
    return parser


def _link_arguments(link: argparse.ArgumentParser) -> None:
    link.add_argument("a", metavar="A")
    link.add_argument("b", metavar="B")
    link.add_argument("--loss", help="drop this share of packets each way, e.g. 20%%")
    link.add_argument("--rate", help="limit each direction, e.g. 1mbit or 500kbit")
    link.add_argument("--delay", help="delay each way, e.g. 50ms (needs the netem qdisc)")
    link.add_argument("--jitter", help="vary the delay, e.g. 10ms (needs the netem qdisc)")
    state = link.add_mutually_exclusive_group()
    state.add_argument("--down", action="store_true", help="cut the link")
    state.add_argument("--up", action="store_true", help="restore a cut link")
    link.add_argument("--clear", action="store_true", help="remove every fault first")


def _link(pg: Playground, args: argparse.Namespace) -> str:
    if not any((args.loss, args.rate, args.delay, args.jitter, args.down, args.up, args.clear)):
        current = pg.link(args.a, args.b)
    else:
        current = pg.link(
            args.a,
            args.b,
            loss=args.loss,
            rate=args.rate,
            delay=args.delay,
            jitter=args.jitter,
            down=args.down,
            up=args.up,
            clear=args.clear,
        )
    return f"{args.a} <-> {args.b}: {describe_faults(current)}\n"


def _console_link(pg: Playground, words: list[str]) -> str:
    parser = _Parser(prog="link", add_help=False)
    _link_arguments(parser)
    return _link(pg, parser.parse_args(words))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "up":
        started = time.perf_counter()
        pg = Playground.up(args.topology, name=args.name)
        took = time.perf_counter() - started
        if args.detach:
            pg.detach()
            print(
                f"playground {pg.name} is up: {len(pg.topology.hosts)} hosts in {took:.2f} s "
                f"(netplay down --name {pg.name} removes it)"
            )
            return 0
        try:
            run_console(pg, sys.stdout, link=_console_link)
        finally:
            pg.down()
        return 0
    if args.command == "list":
        print(format_list([Playground.describe(n) for n in Playground.names()]), end="")
        return 0
    if args.command == "down":
        return _down(args.name, args.purge)
    if args.command == "ca":
        print(_ca(args), end="")
        return 0
    if args.command == "exec":
        _options_after_host(args)
    pg = Playground.attach(args.name)
    if args.command == "status":
        status = pg.status()
        print(
            json.dumps(status, indent=2) if args.json else format_status(status),
            end="\n" if args.json else "",
        )
        return 0
    if args.command == "link":
        print(_link(pg, args), end="")
        return 0
    if args.command == "logs":
        _logs(pg, args)
        return 0
    if args.command == "service":
        now = pg.service(args.service, args.action)
        pid = f", pid {now['pid']}" if now["pid"] else ""
        reason = f" ({now['reason']})" if now["reason"] else ""
        print(f"{now['id']}: {now['state']}{pid}{reason}")
        return 0 if now["state"] != "failed" else ServiceError.exit_status
    if args.command == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            raise UsageError("no command given", hint="e.g. netplay exec h1 -- ping -c1 www")
        pg.host(args.host).execvp(argv)
    if args.command == "shell":
        shell = os.environ.get("SHELL") or "/bin/bash"
        pg.host(args.host).execvp([shell])
    raise UsageError(f"unknown command {args.command!r}")


def _options_after_host(args: argparse.Namespace) -> None:
    """`netplay exec h1 --name NAME -- CMD`: take --name from before the `--` too."""
    argv = args.argv
    while argv[:1] and argv[0].startswith("--name"):
        if argv[0] == "--name" and len(argv) > 1:
            args.name, argv = argv[1], argv[2:]
        elif argv[0].startswith("--name="):
            args.name, argv = argv[0].split("=", 1)[1], argv[1:]
        else:
            raise UsageError("--name needs a value", hint="e.g. netplay exec --name book h1 -- ls")
    args.argv = argv


def _logs(pg: Playground, args: argparse.Namespace) -> None:
    path = pg.log_of(args.service)
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
        if args.lines is not None:
            text = "".join(text.splitlines(keepends=True)[-args.lines :]) if args.lines else ""
        sys.stdout.write(text)
        sys.stdout.flush()
        while args.follow:
            chunk = f.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            elif not path.exists():  # the playground went down
                return
            else:
                time.sleep(FOLLOW_INTERVAL_S)


def _ca(args: argparse.Namespace) -> str:
    store = Playground.certificates(args.name)
    if args.host:
        cert, key = store.server(args.host)
        if not cert.exists():
            raise UnknownHostError(
                f"the playground has no certificate for {args.host!r}",
                hint="see the hosts with `netplay status`",
            )
    elif args.client:
        cert, key = store.client()
    else:
        cert, key = store.ca, None
    if args.pem:
        return cert.read_text()
    return "".join(f"{path}\n" for path in (cert, key) if path is not None)


def _down(name: str | None, purge: bool) -> int:
    removed = Playground.remove(name, purge=purge)
    print(f"playground {removed} removed" if removed else "no playground to remove")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="netplay: %(message)s"
    )
    try:
        return _dispatch(_parser().parse_args(argv))
    except NetplayError as exc:
        if debug:
            raise
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"netplay: {exc}{hint}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("netplay: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(
            f"netplay: internal error: {exc.__class__.__name__}: {exc} "
            "(run again with --debug and report the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
