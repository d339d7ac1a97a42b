"""Mail between two mail domains of one playground: a.test on mx1, b.test on mx2.

ann submits on mx1 (587, STARTTLS, AUTH); mx1 finds b.test's MX in the
playground's DNS and speaks SMTP to mx2.  A recipient mx2 refuses is bounced
to ann at once; while mx2 is down, the message waits in mx1's queue and is
retried, and past the queue's lifetime it is bounced too.
"""

from __future__ import annotations

import email
import email.policy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from _net import run_json
from netplay import Playground
from netplay.topology import loads

LIFETIME_S = 8  # mx1 bounces what it could not deliver in this time
RELAY = f"""
name = "relay"
domain = "a.test"

[dns]
records = ["@ MX 10 mx1"]

[dns.zones."b.test"]
records = ["@ MX 10 mx2.a.test."]

[hosts.ns]
services = [{{ kind = "dns" }}]

[hosts.mx1]
services = [{{ kind = "smtp", ports = [25, 587], retry = 0.5, queue_lifetime = {LIFETIME_S} }}]

[hosts.mx2]
services = [{{ kind = "smtp", ports = [25] }}]

[hosts.client]

[users.ann]
password = "pw"

[lans.lan.hosts]
ns = ["10.9.3.1/24"]
mx1 = ["10.9.3.2/24"]
mx2 = ["10.9.3.3/24"]
client = ["10.9.3.4/24"]
"""

pytestmark = [
    pytest.mark.needs_playground,
    pytest.mark.netplay_topology(loads(RELAY, source="relay")),
]

SUBMIT = r"""
import json, smtplib, ssl, sys
marker, recipients = sys.argv[1], sys.argv[2:]
raw = f"From: ann@a.test\r\nSubject: relay {marker}\r\n\r\nacross domains\r\n".encode()
with smtplib.SMTP("mx1.a.test", 587, timeout=30) as client:
    client.starttls(context=ssl.create_default_context())
    client.login("ann", "pw")
    client.mail("ann@a.test")
    answers = [client.rcpt(r) for r in recipients]
    data = client.data(raw) if any(code == 250 for code, _ in answers) else (0, b"")
print(json.dumps({"rcpt": [[c, t.decode()] for c, t in answers], "data": data[0]}))
"""


@pytest.fixture
def relay(shared_playground: Playground) -> Playground:
    return shared_playground


def submit(pg: Playground, marker: str, *recipients: str) -> Any:
    return run_json(pg.host("client"), SUBMIT, marker, *recipients)


def mailbox(pg: Playground, host: str, user: str = "ann") -> Path:
    return pg.paths.service_data / host / "mail" / user / "new"


def arrived(pg: Playground, host: str, marker: str, timeout: float = 60) -> bytes:
    """The message holding ``marker`` in ann's INBOX on ``host``, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in mailbox(pg, host).iterdir():
            data = path.read_bytes()
            if marker.encode() in data:
                return data
        time.sleep(0.1)
    log = "".join(pg.logs("mx1/smtp", lines=20))
    pytest.fail(f"nothing with {marker} reached {host} in {timeout:g} s; mx1's log:\n{log}")


def queued(pg: Playground) -> list[dict[str, Any]]:
    directory = pg.paths.service_data / "mx1" / "queue"
    return [json.loads(p.read_text()) for p in directory.glob("*.json")]


def test_mail_crosses_to_the_other_domain_by_its_mx(relay: Playground) -> None:
    marker = uuid.uuid4().hex
    said = submit(relay, marker, "ann@b.test", "someone@nowhere.test")
    assert said["rcpt"][0][0] == 250
    assert said["rcpt"][1][0] == 550 and "nowhere.test does not exist" in said["rcpt"][1][1]
    assert said["data"] == 250
    message = arrived(relay, "mx2", marker)
    hops = [line for line in message.split(b"\r\n") if line.startswith(b"\tby ")]
    assert hops[0].startswith(b"\tby mx2.a.test") and hops[1].startswith(b"\tby mx1.a.test")
    assert b"with ESMTPS" in message  # mx1 spoke to mx2 over STARTTLS, verified


def test_a_recipient_the_other_side_refuses_is_bounced(relay: Playground) -> None:
    marker = uuid.uuid4().hex
    assert submit(relay, marker, "nobody@b.test")["data"] == 250
    report = email.message_from_bytes(arrived(relay, "mx1", marker), policy=email.policy.default)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report.get_content_type() == "multipart/report"
    status = report.get_payload()[1].as_string()  # type: ignore[index]
    assert "Final-Recipient: rfc822; nobody@b.test" in status and "550 5.1.1" in status
    assert queued(relay) == []


def test_while_the_other_side_is_down_mail_waits_and_is_retried(relay: Playground) -> None:
    relay.control("mx2/smtp", "stop")
    try:
        marker = uuid.uuid4().hex
        assert submit(relay, marker, "ann@b.test")["data"] == 250
        deadline = time.monotonic() + 30
        while not any(item["attempts"] >= 1 for item in queued(relay)):
            assert time.monotonic() < deadline, "it was never tried"
            time.sleep(0.1)
        (waiting,) = queued(relay)
        assert "cannot talk to mx2.a.test" in waiting["last_error"]
    finally:
        relay.control("mx2/smtp", "start")
    arrived(relay, "mx2", marker)
    assert queued(relay) == []


def test_past_its_lifetime_a_message_is_bounced(relay: Playground) -> None:
    relay.control("mx2/smtp", "stop")
    try:
        marker = uuid.uuid4().hex
        assert submit(relay, marker, "ann@b.test")["data"] == 250
        report = arrived(relay, "mx1", marker, timeout=LIFETIME_S + 60)
        assert b"Undelivered Mail Returned to Sender" in report
        assert f"gave up after {LIFETIME_S} s".encode() in report
        assert queued(relay) == []
    finally:
        relay.control("mx2/smtp", "start")


def test_postfix_relays_by_the_mx_over_verified_tls_and_bounces(playground_factory: Any) -> None:
    """The same crossing with Postfix as mx1's engine: Postfix finds the MX in the
    playground's DNS, verifies mx2's certificate against the playground's CA,
    and bounces what mx2 refuses to ann's mailbox on mx1."""
    from _mail import unavailable

    why = unavailable("postfix", "smtp")
    if why is not None:
        pytest.skip(why)
    pg = playground_factory(
        loads(
            RELAY.replace(
                'kind = "smtp", ports = [25, 587]',
                'kind = "smtp", engine = "postfix", ports = [25, 587]',
            ),
            source="relay with postfix",
        )
    )
    marker = uuid.uuid4().hex
    said = submit(pg, marker, "ann@b.test", "nobody@b.test", "someone@nowhere.test")
    assert [code for code, _text in said["rcpt"]] == [250, 250, 550]
    assert said["data"] == 250
    message = arrived(pg, "mx2", marker)
    assert b"by mx2.a.test" in message and b"with ESMTPS" in message
    report = email.message_from_bytes(arrived(pg, "mx1", marker), policy=email.policy.default)
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report.get_content_type() == "multipart/report"
    status = report.get_payload()[1].as_string()  # type: ignore[index]
    assert "Final-Recipient: rfc822; nobody@b.test" in status and "5.1.1" in status
