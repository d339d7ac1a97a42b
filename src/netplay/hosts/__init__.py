"""Hosts of a running playground, the programs that run in them, and the
files a playground gives them."""

from netplay.hosts._files import remove_files, write_files
from netplay.hosts._host import Host
from netplay.hosts._spawn import Ready, Spawned

__all__ = ["Host", "Ready", "Spawned", "remove_files", "write_files"]
