"""The ``dns`` kind, built in: the playground's authoritative server (:mod:`netplay.dns`)."""

from __future__ import annotations

import asyncio
import logging

import dns.exception
import dns.message
import dns.query
import dns.rcode

from netplay.dns._server import serve
from netplay.errors import TopologyError
from netplay.services._base import Context, Engine, HealthError, Start


class DnsEngine(Engine):
    default_ports = (53,)

    def check(self, ctx: Context, where: str) -> None:
        super().check(ctx, where)
        if ctx.topology.domain is None:
            raise TopologyError("a dns service needs the topology's domain", field="domain")

    def _addresses(self, ctx: Context) -> list[str]:
        attached = ctx.topology.attachments_of(ctx.host)
        every = (str(a.ip) for _net, att in attached for a in att.addresses)
        return list(dict.fromkeys(every))  # a router may use one address on several links

    def start(self, ctx: Context) -> Start:
        zones, addresses, port = ctx.zones, self._addresses(ctx), self.ports(ctx)[0]

        def run() -> None:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
            asyncio.run(serve(zones, addresses, port))

        return run

    def health(self, ctx: Context, timeout: float) -> None:
        query = dns.message.make_query(ctx.fqdn, "A")
        try:
            reply = dns.query.udp(query, ctx.address, port=self.ports(ctx)[0], timeout=timeout)
        except dns.exception.DNSException as exc:
            raise HealthError(f"no DNS answer ({exc})") from exc
        if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
            raise HealthError(f"{ctx.fqdn} A was answered {dns.rcode.to_text(reply.rcode())}")

    def listens(self, ctx: Context) -> list[str]:
        port = self.ports(ctx)[0]
        return [f"udp/{port}", f"tcp/{port}"]
