"""The ``netplay`` command line."""

from netplay.cli._format import format_list, format_status
from netplay.cli._main import main

__all__ = ["format_list", "format_status", "main"]
