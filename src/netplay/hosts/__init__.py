"""Hosts of a running playground, the programs that run in them, the
files a playground gives them, and their own filesystems and accounts."""

from netplay.hosts._files import remove_files, write_files
from netplay.hosts._filesystem import forget
from netplay.hosts._host import Host
from netplay.hosts._spawn import Ready, Spawned

__all__ = ["Host", "Ready", "Spawned", "forget", "remove_files", "write_files"]
