"""The ``netplay`` command line."""

from netplay.cli._format import format_list, format_status
from netplay.cli._main import command, main

__all__ = ["command", "format_list", "format_status", "main"]
