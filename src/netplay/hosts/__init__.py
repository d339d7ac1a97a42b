"""Hosts of a running playground and the programs that run in them."""

from netplay.hosts._host import Host

__all__ = ["Host"]
