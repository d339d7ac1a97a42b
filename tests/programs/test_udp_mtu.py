"""udp_mtu: the path MTU through a line of four hosts whose middle link has MTU 1400."""

from __future__ import annotations

import sys

import pytest

from netplay import Playground
from netplay.topology import loads

MTU_TOPOLOGY = """
name = "mtu"
[hosts.a]
routes = [{ to = "default", via = "10.7.1.1" }]
[hosts.r1]
forward = true
routes = [{ to = "10.7.3.0/24", via = "10.7.2.2" }]
[hosts.r2]
forward = true
routes = [{ to = "10.7.1.0/24", via = "10.7.2.1" }]
[hosts.b]
routes = [{ to = "default", via = "10.7.3.1" }]
[lans.left]
hosts = { a = ["10.7.1.2/24"], r1 = ["10.7.1.1/24"] }
[lans.right]
hosts = { r2 = ["10.7.3.1/24"], b = ["10.7.3.2/24"] }
[links.middle]
mtu = 1400
hosts = { r1 = ["10.7.2.1/24"], r2 = ["10.7.2.2/24"] }
"""


@pytest.mark.netplay_topology(loads(MTU_TOPOLOGY, source="mtu.toml"))
def test_path_mtu_through_a_narrow_middle_link(playground: Playground) -> None:
    argv = [sys.executable, "-m", "netplay.programs.udp_mtu"]
    far = playground.host("a").run([*argv, "10.7.3.2"], timeout=60)
    near = playground.host("a").run([*argv, "10.7.1.1"], timeout=60)
    assert far.stdout.startswith("path MTU to 10.7.3.2: 1400 bytes"), far.stderr
    assert "1500 -> 1400" in far.stdout
    assert near.stdout.startswith("path MTU to 10.7.1.1: 1500 bytes"), near.stderr
