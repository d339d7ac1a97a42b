"""Our own tests use netplay.testing, the plugin users get (registered by its
entry point): ``shared_playground``, ``playground``, ``playground_factory``,
``spawn``, ``link_fault``, ``playground_ca``, and the markers
``netplay_topology`` and ``needs_playground``."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from _mail import mail_engine
from netplay import Playground
from netplay.fabric import remove_tree

with warnings.catch_warnings():
    # Hypothesis suggests a patch for a failing example with libcst, where it is
    # installed, whose import warns (mypy_extensions.TypedDict); under -W error
    # that would turn a failing example into an internal error that hides it
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        import hypothesis.extra._patching  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def data_dir() -> Iterator[str]:
    """Keep the CAs of the playgrounds tests make themselves (which outlive
    `down`) out of /var/lib, and delete them (and, rootless, what the hosts'
    users made, which only netplay's remover may delete)."""
    path = tempfile.mkdtemp(prefix="netplay-test-data-")
    os.environ["NETPLAY_DATA_DIR"] = path
    try:
        yield path
    finally:
        del os.environ["NETPLAY_DATA_DIR"]
        remove_tree(Path(path))


@pytest.fixture
def book(shared_playground: Playground) -> Playground:
    """The book playground the session shares (a module may not mark another topology)."""
    assert shared_playground.topology.name == "book"
    return shared_playground


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (NETPLAY_NO_SKIPS=1), which provides every capability, a skip is a failure:
    the rootless part, say, must not quietly stop running."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("NETPLAY_NO_SKIPS") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be (NETPLAY_NO_SKIPS): {report.longrepr}"


@pytest.fixture(params=[mail_engine("builtin"), mail_engine("dovecot")])
def mail(request: pytest.FixtureRequest, shared_playground: Playground) -> Playground:
    """The book with its mail host's pop3 and imap served by each engine in turn
    (netplay's own, then Dovecot's): tests of them that RFC 1939 and 3501 decide
    take this, so that both engines must pass them."""
    assert shared_playground.topology.name == "book"
    return shared_playground
