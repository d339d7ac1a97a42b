"""Waiting without sleeping for a fixed time: poll a real observation until it holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from netplay import Playground, ServiceState, ServiceStatus

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``check`` until it returns something true, and return that;
    TimeoutError (saying ``what`` did not happen, and the last value) after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            what = what or "the condition"
            raise TimeoutError(f"{what} did not hold in {timeout:g} s: {value!r}")
        time.sleep(interval)
    return value


def wait_for_service(
    pg: Playground,
    ident: str,
    state: ServiceState = ServiceState.RUNNING,
    *,
    other_than: int | None = None,
    timeout: float = 20.0,
) -> ServiceStatus:
    """The service's status once it is in ``state`` (and, with ``other_than``,
    its server is another process than that pid: it was restarted)."""

    def reached() -> ServiceStatus | None:  # None until it is reached
        now = pg.service(ident)
        if now.state is not state or (other_than is not None and now.pid in (other_than, None)):
            return None
        return now

    reached_status: ServiceStatus | None = wait_until(
        reached, timeout=timeout, what=f"{ident} {state}"
    )
    assert reached_status is not None
    return reached_status
