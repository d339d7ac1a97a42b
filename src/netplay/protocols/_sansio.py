"""The sentinels a sans-IO core's ``next_event()`` gives when it has no event.

``NEED_DATA``: nothing whole yet, call ``receive_data`` with more bytes.
``END``: the peer ended its stream cleanly, and every event before the end
has been given.  They are the two members of an enum, so ``is`` tells them
apart and mypy narrows on it: after ``if event is NEED_DATA`` and ``if event
is END``, what is left is an event.
"""

from __future__ import annotations

import enum
from typing import Final


class Sentinel(enum.Enum):
    """What ``next_event()`` gives instead of an event: NEED_DATA or END."""

    NEED_DATA = "NEED_DATA"
    END = "END"

    def __repr__(self) -> str:
        return self.value

    __str__ = __repr__


NEED_DATA: Final = Sentinel.NEED_DATA
END: Final = Sentinel.END
