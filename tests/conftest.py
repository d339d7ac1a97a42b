"""Fixtures: real playgrounds in real namespaces, and what needs them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from netplay import Playground


def _can_build() -> str | None:
    if os.geteuid() != 0:
        return "building playgrounds in the test suite needs root (CI runs as root)"
    for tool in ("nft", "ip", "ping", "traceroute"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"{tool} is not installed (.ci/run installs it)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _can_build()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("playground"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def data_dir() -> Iterator[str]:
    """Keep the CAs the tests make (which outlive `down`) out of /var/lib, and delete them."""
    path = tempfile.mkdtemp(prefix="netplay-test-data-")
    os.environ["NETPLAY_DATA_DIR"] = path
    try:
        yield path
    finally:
        del os.environ["NETPLAY_DATA_DIR"]
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def book() -> Iterator[Playground]:
    """The book playground, shared by the tests of one module."""
    with Playground.up("book", name=f"t{os.getpid()}") as pg:
        yield pg
