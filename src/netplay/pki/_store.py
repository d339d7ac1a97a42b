"""The playground's CA and certificates on disk, and the trust bundles hosts see.

They live in the playground's data directory (``/var/lib/netplay/NAME`` as
root, ``~/.local/share/netplay/NAME`` as a user, ``$NETPLAY_DATA_DIR/NAME``
when that is set), not with its runtime state, so the CA outlives ``down``:
trust it once elsewhere and it stays trusted.  ``netplay down --purge``
deletes it.  Layout::

    ca.pem  ca.key                  the CA (keys are 0600)
    servers/HOST.pem  HOST.key      one serverAuth certificate per host
    clients/USER.pem  USER.key      the demo user's clientAuth certificate
    manifest.json                   what each names and until when

``up`` compares what each host's certificate must name with the manifest
and issues only what changed or is near its end, so a second ``up`` does
not even load ``cryptography``.

A host without services gets its certificate *later*, when a program
first enters it (:meth:`Store.issue_later`, as its view is made:
:func:`netplay.fabric.enter_host`), so that the hosts of a large
playground that nothing enters cost no certificate (line:10000 wrote
20,000 files).  ``up`` only records in the manifest what it will name and
as of when it is issued (the up's time: it ends when one issued at ``up``
would), and deletes one kept from before that names something else, so
that a certificate on disk is always one the manifest still wants.

Inside the hosts the CA is trusted by bind-mounting, over each CA bundle
that OpenSSL, Python's ``ssl``, curl and ``certifi`` (requests) read, a copy
of that bundle with the playground's CA appended.  The mounts exist only in
the hosts' mount namespaces; the machine's own files are never written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import shutil
import ssl
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netplay import _progress as progress
from netplay.errors import PkiError
from netplay.topology import Topology

if TYPE_CHECKING:
    from netplay.pki._issue import Pair
    from netplay.topology import Zones

DEMO_USER = "brandon"
RENEW_BEFORE = dt.timedelta(days=30)
PER_WORKER = 500  # certificates worth a forked worker of their own
BATCH = 100  # certificates a worker issues between two reports (the progress bar's steps)
BUNDLES = (  # the CA files of Debian, Fedora and Alpine-like systems, if present
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/usr/lib/python3/dist-packages/certifi/cacert.pem",
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What :meth:`Store.ensure` did: the certificates it ``issued``
    (``servers/www``, ...), and those it left for their hosts' first entry:
    ``later``, host -> the request :meth:`Store.issue_later` takes then."""

    issued: list[str]
    later: dict[str, str]


@dataclass(frozen=True, slots=True)
class Wanted:
    """What one certificate must name."""

    names: tuple[str, ...]
    addresses: tuple[str, ...] = ()


def wanted(topology: Topology, zones: Zones) -> dict[str, Wanted]:
    """Host -> what its certificate names: full name (its subject), short
    name, every DNS name that leads to one of its addresses (through CNAMEs
    too), and every address."""
    from netplay.topology import aliases

    names_of = aliases(zones)
    found = {}
    for host, attached in topology.by_host().items():
        addresses = list(dict.fromkeys(str(a.ip) for _net, att in attached for a in att.addresses))
        names = [topology.fqdn(host), host]
        for address in addresses:
            names += names_of.get(address, [])
        found[host] = Wanted(tuple(dict.fromkeys(names)), tuple(addresses))
    return found


def _write(path: Path, data: bytes, mode: int, *, in_place: bool = False) -> None:
    """Replace ``path`` atomically; the new file never has looser permissions.

    ``in_place``: the file counts only once the manifest names it, and the
    manifest does not yet (a host's new certificate or key), so if it does
    not exist it is written where it goes: half of one, after a crash, is
    not named and is issued again at the next ``up``.  That halves the
    files created, 0.5 ms each on a slow disk, for 10,000 hosts.
    """
    if in_place:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            pass
        else:
            with open(fd, "wb") as f:
                os.fchmod(fd, mode)  # whatever the umask: hosts' users read certificates
                f.write(data)
            return
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with open(fd, "wb") as f:
        os.fchmod(fd, mode)
        f.write(data)
    os.replace(tmp, path)


class Store:
    """The CA and certificates of one playground, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @property
    def ca(self) -> Path:
        """The CA certificate (PEM): what to trust elsewhere."""
        return self.dir / "ca.pem"

    def server(self, host: str) -> tuple[Path, Path]:
        """The certificate and key files of ``host``."""
        return self.dir / "servers" / f"{host}.pem", self.dir / "servers" / f"{host}.key"

    def client(self, user: str = DEMO_USER) -> tuple[Path, Path]:
        """The client certificate and key files of ``user``."""
        return self.dir / "clients" / f"{user}.pem", self.dir / "clients" / f"{user}.key"

    def seen_by(self, host: str) -> list[Path]:
        """What a host may see of the store: the CA's certificate, its own
        certificate and key, and the demo user's client certificate and key
        (for mutual TLS from any host).  Never the CA's key or another host's."""
        return [self.ca, *self.server(host), *self.client()]

    def _manifest(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.dir / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def ensure(
        self,
        playground: str,
        servers: Mapping[str, Wanted],
        email_domain: str,
        now: dt.datetime,
        later: AbstractSet[str] = frozenset(),
    ) -> Plan:
        """Make the CA if there is none and issue every certificate that is
        missing, names something else, or ends within RENEW_BEFORE, but for
        the hosts in ``later``: theirs are planned, to be issued at their
        first entry (see the module's docstring)."""
        try:
            return self._ensure(playground, servers, email_domain, now, later)
        except OSError as exc:
            raise self._cannot_keep(exc) from exc

    def _cannot_keep(self, exc: OSError) -> PkiError:
        return PkiError(
            f"cannot keep the playground's certificates in {self.dir}: {exc.strerror}",
            hint="set NETPLAY_DATA_DIR to a directory you can write",
        )

    def _ensure(
        self,
        playground: str,
        servers: Mapping[str, Wanted],
        email_domain: str,
        now: dt.datetime,
        later: AbstractSet[str],
    ) -> Plan:
        for sub in (self.dir, self.dir / "servers", self.dir / "clients"):
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)
        manifest = self._manifest()
        ca_key = self.dir / "ca.key"
        if not (self.ca.exists() and ca_key.exists()):
            from netplay.pki import _issue

            ca = _issue.make_ca(playground, now)
            _write(ca_key, ca.key, 0o600)
            _write(self.ca, ca.cert, 0o644)
            manifest = {}
        fingerprint = hashlib.sha256(self.ca.read_bytes()).hexdigest()
        if manifest.get("ca") != fingerprint:
            manifest = {"ca": fingerprint, "certs": {}}
        certs: dict[str, Any] = manifest["certs"]
        todo = {f"servers/{host}": want for host, want in servers.items()}
        todo[f"clients/{DEMO_USER}"] = Wanted((DEMO_USER, f"{DEMO_USER}@{email_domain}"))
        renew = (now + RENEW_BEFORE).timestamp()
        planned = {f"servers/{host}" for host in later}
        stale = [
            key
            for key, want in todo.items()
            if certs.get(key, {}).get("names") != list(want.names)
            or certs[key].get("addresses") != list(want.addresses)
            or certs[key].get("not_after", 0) < renew
            or (key in planned and "as_of" not in certs[key])
            or (
                key not in planned
                and not ((self.dir / f"{key}.pem").exists() and (self.dir / f"{key}.key").exists())
            )
        ]
        now_stale = [key for key in stale if key not in planned]
        if now_stale:
            self._issue(now_stale, todo, certs, now)
        if len(now_stale) < len(stale):
            self._plan([key for key in stale if key in planned], todo, certs, now)
        for key in [k for k in certs if k not in todo]:
            del certs[key]
            self._forget(key)
        if stale or len(certs) != len(todo):
            _write(self.dir / "manifest.json", json.dumps(manifest, indent=1).encode(), 0o644)
        requests = {}
        for key in planned:
            entry = certs[key]
            request = {k: entry[k] for k in ("names", "addresses", "as_of")}
            requests[key.removeprefix("servers/")] = json.dumps(request)
        return Plan(issued=now_stale, later=requests)

    def _forget(self, key: str) -> None:
        """Delete a certificate and its key: the pem first, since a key
        without its pem counts as not issued (:meth:`issue_later`)."""
        for suffix in (".pem", ".key"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / f"{key}{suffix}").unlink()

    def _plan(
        self, keys: list[str], todo: Mapping[str, Wanted], certs: dict[str, Any], now: dt.datetime
    ) -> None:
        """Record ``keys`` as issued at their host's first entry, as of ``now``;
        delete what an earlier plan issued for them."""
        from netplay.pki import _issue

        ends = _issue.leaf_ends(self.ca.read_bytes(), now).timestamp()
        for key in keys:
            self._forget(key)
            want = todo[key]
            certs[key] = {
                "names": list(want.names),
                "addresses": list(want.addresses),
                "not_after": ends,
                "as_of": now.timestamp(),
            }

    @staticmethod
    def load_issuer() -> None:
        """Import what issuing takes (``cryptography``, 0.1 s): in a process
        that forks children that may issue, so that each need not."""
        importlib.import_module("netplay.pki._issue")

    def issue_later(self, host: str, request: str) -> None:
        """Issue ``host``'s certificate as :meth:`ensure` planned it
        (``request``), unless it has been: at the host's first entry, in
        the process that enters it, under the lock of its view."""
        cert, key = self.server(host)
        if cert.exists() and key.exists():
            return
        from netplay.pki import _issue

        asked = json.loads(request)
        want = Wanted(tuple(asked["names"]), tuple(asked["addresses"]))
        as_of = dt.datetime.fromtimestamp(asked["as_of"], dt.UTC)
        try:
            ca = _issue.Pair(self.ca.read_bytes(), (self.dir / "ca.key").read_bytes())
            # named (the manifest names it already): the key, then the certificate,
            # each whole or not at all; a key alone, after a crash, is not issued
            self._issue_one(ca, f"servers/{host}", want, False, as_of)
        except OSError as exc:
            raise self._cannot_keep(exc) from exc

    def _issue(
        self, keys: list[str], todo: Mapping[str, Wanted], certs: dict[str, Any], now: dt.datetime
    ) -> None:
        """Issue ``keys``, recording each in ``certs``: here, or, for many, in
        forked workers, one per core (10,000 hosts took 5 s in one)."""
        from netplay.pki import _issue

        ca = _issue.Pair(self.ca.read_bytes(), (self.dir / "ca.key").read_bytes())
        # (key, what it names, whether the manifest on disk names it yet)
        jobs = [(key, todo[key], key not in certs) for key in keys]
        workers = min(os.cpu_count() or 1, len(keys) // PER_WORKER)
        with progress.steps("issuing certificates", len(keys)) as step:
            if workers < 2:
                for key, want, unnamed in jobs:
                    certs[key] = self._issue_one(ca, key, want, unnamed, now)
                    step()
                return
            import concurrent.futures  # here: an up that issues little need not load them
            import multiprocessing

            fork = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=fork) as pool:
                batches = [jobs[i : i + BATCH] for i in range(0, len(jobs), BATCH)]
                issuing = [pool.submit(self._issue_all, ca, batch, now) for batch in batches]
                for done in concurrent.futures.as_completed(issuing):
                    try:
                        issued = done.result()
                    except Exception as exc:
                        raise PkiError(f"cannot issue the certificates: {exc}") from exc
                    for key, entry in issued:
                        certs[key] = entry
                        step()

    def _issue_all(
        self, ca: Pair, jobs: list[tuple[str, Wanted, bool]], now: dt.datetime
    ) -> list[tuple[str, dict[str, Any]]]:
        """In a worker: issue each job's certificate; their manifest entries."""
        return [(key, self._issue_one(ca, key, want, unnamed, now)) for key, want, unnamed in jobs]

    def _issue_one(
        self, ca: Pair, key: str, want: Wanted, unnamed: bool, now: dt.datetime
    ) -> dict[str, Any]:
        """Issue and write one certificate (``unnamed``: the manifest does not
        name it yet, see :func:`_write`); return its manifest entry."""
        from netplay.pki import _issue

        if key.startswith("clients/"):
            pair = _issue.issue_client(ca, want.names[0], want.names[1], now)
        else:
            pair = _issue.issue_server(ca, want.names, want.addresses, now)
        _write(self.dir / f"{key}.key", pair.key, 0o600, in_place=unnamed)
        _write(self.dir / f"{key}.pem", pair.cert, 0o644, in_place=unnamed)
        return {
            "names": list(want.names),
            "addresses": list(want.addresses),
            "not_after": _issue.not_after(pair.cert).timestamp(),
            "as_of": now.timestamp(),
        }

    def purge(self) -> bool:
        """Delete the CA and every certificate; True if there was something."""
        if not self.dir.exists():
            return False
        shutil.rmtree(self.dir)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # not while other playgrounds keep their CAs there
        return True


def trust_targets() -> list[Path]:
    """The CA bundle files that programs in a host read, resolved and deduplicated."""
    paths = ssl.get_default_verify_paths()
    candidates = [paths.openssl_cafile, paths.cafile or "", *BUNDLES]
    spec = importlib.util.find_spec("certifi")
    if spec is not None and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "cacert.pem"))
    found: dict[Path, None] = {}
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            found[Path(os.path.realpath(candidate))] = None
    return list(found)


def bundles(ca_pem: bytes, directory: Path) -> Iterator[tuple[Path, Path]]:
    """Write, for each trust target, a copy with ``ca_pem`` appended;
    yield (copy, target) pairs for the hosts' bind mounts."""
    for i, target in enumerate(trust_targets()):
        try:
            original = target.read_bytes()
        except OSError:
            continue
        copy = directory / f"trust{i}.pem"
        separator = b"" if original.endswith(b"\n") or not original else b"\n"
        _write(copy, original + separator + b"# the netplay playground's CA\n" + ca_pem, 0o644)
        yield copy, target
