"""nftables rules, always inside a playground namespace, never the machine's.

Rulesets are built as nft's JSON (pure functions, tested without a kernel)
and applied by running ``nft -j -f -`` from a thread that has entered the
namespace.  pyroute2's nftables module is a prototype, so nft is the tool.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from netplay.errors import FabricError, MissingToolError
from netplay.fabric._namespaces import netns

NAT_TABLE = "netplay_nat"
FIREWALL_TABLE = "netplay_firewall"
FAULTS_TABLE = "netplay_faults"
SWITCH_TABLE = "netplay_switch"


def _match(key: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": key, "right": right}}


def _chain(family: str, table: str, name: str) -> dict[str, Any]:
    return {"family": family, "table": table, "name": name}


def _table(chain: dict[str, Any]) -> dict[str, Any]:
    return {"add": {"table": {"family": chain["family"], "name": chain["table"]}}}


def _base_chain(
    chain: dict[str, Any], kind: str, hook: str, prio: int, **more: Any
) -> dict[str, Any]:
    """Add ``chain`` on ``hook``, letting through what no rule drops."""
    return {
        "add": {
            "chain": {**chain, "type": kind, "hook": hook, **more, "prio": prio, "policy": "accept"}
        }
    }


def _rule(chain: dict[str, Any], *expr: dict[str, Any]) -> dict[str, Any]:
    where = {"family": chain["family"], "table": chain["table"], "chain": chain["name"]}
    return {"add": {"rule": {**where, "expr": list(expr)}}}


def home_router(outside: str) -> list[dict[str, Any]]:
    """Masquerade IPv4 leaving by ``outside``; forward back only what started inside."""
    oif = {"meta": {"key": "oifname"}}
    iif = {"meta": {"key": "iifname"}}
    nat = _chain("ip", NAT_TABLE, "postrouting")
    forward = _chain("inet", FIREWALL_TABLE, "forward")
    started_inside = _match({"ct": {"key": "state"}}, ["established", "related"], "in")
    return [
        _table(nat),
        _base_chain(nat, "nat", "postrouting", 100),
        _rule(nat, _match(oif, outside), {"masquerade": None}),
        _table(forward),
        _base_chain(forward, "filter", "forward", 0),
        _rule(forward, _match(iif, outside), started_inside, {"accept": None}),
        _rule(forward, _match(iif, outside), {"drop": None}),
    ]


def quiet_switch() -> list[dict[str, Any]]:
    """A large LAN's switch forwards no MLD listener reports.

    Each host reports the multicast groups it joins (one per IPv6 address,
    each report sent twice) as it comes up.  With no MLD querier on the
    LAN a bridge floods the reports to every host, so N hosts coming up
    cost some 6 N^2 frames: seconds of a busy CPU, and lost neighbour
    solicitations meanwhile, for a thousand hosts.  A snooping switch
    sends reports only towards multicast routers, and there are none.
    """
    forward = _chain("bridge", SWITCH_TABLE, "forward")
    reports = ["mld-listener-report", "mld-listener-done", "mld2-listener-report"]
    icmp_type = {"payload": {"protocol": "icmpv6", "field": "type"}}
    return [
        _table(forward),
        _base_chain(forward, "filter", "forward", 0),
        _rule(forward, _match(icmp_type, {"set": reports}), {"drop": None}),
    ]


def _loss_chain(dev: str) -> dict[str, Any]:
    return _chain("netdev", FAULTS_TABLE, f"loss_{dev}")


def set_loss(dev: str, percent: float) -> list[dict[str, Any]]:
    """Drop ``percent`` % of what arrives at ``dev``, at random."""
    chain = _loss_chain(dev)
    threshold = round(percent * 100)  # numgen over 0..9999: 0.01 % steps
    match = (
        []
        if threshold >= 10000
        else [  # 100 %: every packet, no numbers drawn
            _match({"numgen": {"mode": "random", "mod": 10000}}, threshold, "<")
        ]
    )
    return [
        _table(chain),
        _base_chain(chain, "filter", "ingress", 0, dev=dev),
        {"flush": {"chain": chain}},
        _rule(chain, *match, {"drop": None}),
    ]


def clear_loss(dev: str) -> list[dict[str, Any]]:
    return [{"delete": {"chain": _loss_chain(dev)}}]


def nft_path() -> str:
    path = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if path is None:
        raise MissingToolError("nft", "nftables")
    return path


def apply(pin: Path, commands: list[dict[str, Any]], where: str) -> None:
    """Run the commands with ``nft -j -f -`` inside the namespace at ``pin``."""
    document = json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]})
    nft = nft_path()
    with netns(pin):
        result = subprocess.run(
            [nft, "-j", "-f", "-"], input=document, capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[0]
        raise FabricError(f"nft refused the rules for {where}: {detail}")
