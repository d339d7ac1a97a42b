"""What the CLI prints, from model objects (no root, no playground), and the one
command table that the command line and the console are both built from."""

from __future__ import annotations

import dataclasses
import io

import pytest

from netplay import (
    CableFaults,
    HostStatus,
    InterfaceState,
    InterfaceStatus,
    Mode,
    NetworkStatus,
    PlaygroundState,
    ServiceState,
    ServiceStatus,
    Status,
    Summary,
    UsageError,
)
from netplay.cli._commands import COMMANDS
from netplay.cli._console import help_text, run_console
from netplay.cli._format import (
    ROOTLESS_ONE_USER,
    ROOTLESS_SHARED,
    describe_faults,
    format_list,
    format_service,
    format_status,
)
from netplay.cli._main import _parser


def _service(**changes: object) -> ServiceStatus:
    values: dict[str, object] = {
        "id": "www/https",
        "host": "www",
        "name": "https",
        "kind": "https",
        "engine": "granian",
        "listens": ("tcp/443",),
        "state": ServiceState.RUNNING,
        "pid": 4242,
        "restarts": 1,
        "reason": "",
        "log": "/run/netplay/t/services/www.https.log",
    }
    values.update(changes)
    return ServiceStatus(**values)  # type: ignore[arg-type]


def _status(services: tuple[ServiceStatus, ...] = ()) -> Status:
    eth0 = InterfaceStatus(
        name="eth0",
        network="homeA",
        addresses=("192.168.1.1/24",),
        state=InterfaceState.UP,
        mtu=1500,
    )
    eth1 = InterfaceStatus(
        name="eth1", network="isp-lan", addresses=(), state=InterfaceState.DOWN, mtu=1400
    )
    return Status(
        name="t",
        mode=Mode.ROOTLESS,
        topology="book",
        hosts=(HostStatus(name="modemA", forward=True, nat="isp-lan", interfaces=(eth0, eth1)),),
        networks=(
            NetworkStatus(name="homeA", kind="lan", mtu=1500, hosts=("modemA", "h1")),
            NetworkStatus(name="isp-lan", kind="lan", mtu=1400, hosts=("modemA",)),
        ),
        faults={"modemA/isp-lan": CableFaults(loss=20.0, rate="1mbit", down=True)},
        services=services,
    )


def test_status_tables() -> None:
    text = format_status(_status())
    assert "playground t (book, rootless)" in text
    row = next(line for line in text.splitlines() if "modemA" in line and "eth0" in line)
    assert "192.168.1.1/24" in row and " up " in row and "nat router" in row
    assert any("eth1" in line and "down" in line for line in text.splitlines())
    faults = next(line for line in text.splitlines() if line.startswith("│ isp-lan"))
    assert "modemA: loss 20%, rate 1mbit, down" in faults
    assert "services" not in text  # no table for a playground without services
    assert text.endswith(ROOTLESS_SHARED)  # what differs, rootless with subordinate ids
    one_user = format_status(dataclasses.replace(_status(), one_user=True))
    assert one_user.endswith(ROOTLESS_SHARED + ROOTLESS_ONE_USER)  # and without
    as_root = format_status(dataclasses.replace(_status(), mode=Mode.ROOT))
    assert ROOTLESS_SHARED not in as_root and ROOTLESS_ONE_USER not in as_root


def test_services_table_says_why_a_service_failed() -> None:
    failed = _service(id="mail/smtp", state=ServiceState.FAILED, pid=None, reason="port in use")
    text = format_status(_status((_service(), failed)))
    assert any("www/https" in line and "4242" in line for line in text.splitlines())
    assert "failed: port in use" in text


def test_faults_and_a_controlled_service_in_one_line() -> None:
    assert describe_faults(CableFaults()) == "clear"
    assert describe_faults(CableFaults(delay="20ms", jitter="5ms")) == "delay 20ms, jitter 5ms"
    assert format_service(_service()) == "www/https: running, pid 4242\n"
    stopped = _service(state=ServiceState.STOPPED, pid=None, reason="asked to")
    assert format_service(stopped) == "www/https: stopped (asked to)\n"


def test_the_list() -> None:
    assert format_list([]) == "no playground is running\n"
    text = format_list(
        [
            Summary(
                name="book",
                state=PlaygroundState.RUNNING,
                mode=Mode.ROOT,
                spec="book",
                hosts=12,
            ),
            Summary(name="old", state=PlaygroundState.CRASHED, mode=None, spec="?", hosts=0),
        ]
    )
    assert any("book" in line and "running" in line and "12" in line for line in text.splitlines())
    assert any("old" in line and "crashed" in line for line in text.splitlines())


def test_every_command_of_the_table_is_a_subcommand_with_its_help() -> None:
    help_text_of_cli = _parser().format_help()
    for command in COMMANDS:
        assert command.name in help_text_of_cli
    args = _parser().parse_args(["link", "modemA", "isp", "--loss", "5%", "--name", "x"])
    assert (args.command, args.a, args.loss, args.name) == ("link", "modemA", "5%", "x")
    with pytest.raises(UsageError):
        _parser().parse_args(["logs", "www/http", "-n", "-5"])


def test_the_console_offers_the_table_s_commands() -> None:
    shown = help_text({c.name: (c, None) for c in COMMANDS if c.console})  # type: ignore[misc]
    for command in COMMANDS:
        assert (f"  {command.name} " in shown) == command.console, command.name
    assert "HOST COMMAND" in shown and "exit" in shown


class _Stub:
    """Just enough of a playground for the console's own commands (no namespaces)."""

    name = "t"

    class topology:  # stands in for a Topology's attribute
        hosts = ()


def test_the_console_reads_until_exit_and_reports_errors() -> None:
    lines = iter(["help", "help link", "link", "nonsense", "exit", "never read"])
    out = io.StringIO()
    run_console(_Stub(), out, read=lambda prompt: next(lines))  # type: ignore[arg-type]
    text = out.getvalue()
    assert "playground t is up: 0 hosts" in text
    assert "usage: link" in text and "--loss LOSS" in text
    assert "error: the following arguments are required: A, B" in text
    assert "unknown command or host 'nonsense'" in text
