"""``netplay ssh HOST [-u USER] [-- CMD ...]``: OpenSSH's client, from the machine, into a host.

The machine has no address in the playground (its networks exist only in
the hosts' namespaces), so the client must run in the network of a host
that can reach HOST.  It runs in HOST's own network namespace and connects
to HOST's own address: a host always reaches itself, whatever the topology,
its routes, NAT or a cut link, so the command works wherever the service
runs (to log in from another host, `netplay exec h1 -- ssh brandon@www`).
It joins that network namespace only, not the host's mount namespace: it
is the machine's ``ssh``, with the machine's files and the user's terminal,
and so it can read the key and the known_hosts file in the playground's
data directory, which hosts never see (docs/topology.md).  (Entering the
whole host, as ``netplay exec`` does, would mean copying the private key
into the host, and OpenSSH closes every inherited descriptor at start, so
a ``/dev/fd/N`` cannot carry it in.)  This process becomes ``ssh``
(``execv``): stdin, the tty, signals and the exit status pass straight
through.

Host keys are trusted from what the services keep (``services/HOST/ssh/``,
see :mod:`netplay.services.engines.ssh`): each run writes
``DATA/NAME/ssh/known_hosts`` afresh, one line per host with an ssh service
under its short name, full name and every address, and ``ssh`` checks it
strictly (``StrictHostKeyChecking=yes``) and no other file.

Logging in: a key pair of the playground, made at first use and kept in
``DATA/NAME/ssh/id_ed25519`` (mode 0600; ``down --purge`` forgets it), whose
public key is added to the user's ``~/.ssh/authorized_keys`` in HOST
(through the host, as root, as an administrator would; once), so the
server's login stays what it is for everyone: the topology's users, by
their password or keys.  The key is accepted only for the users and hosts
it was used for.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from netplay import Playground, ServiceState, fabric
from netplay.errors import MissingToolError, NetplayError, ServiceError, UsageError

if TYPE_CHECKING:
    from netplay.cli._commands import Session

KIND = "ssh"
CLIENT_DIR = "ssh"  # in the playground's data directory
KEY_NAME = "id_ed25519"
KNOWN_HOSTS = "known_hosts"
CONNECT_TIMEOUT_S = 10
AUTHORIZE_TIMEOUT_S = 30
EXAMPLE = "e.g. netplay ssh www -u brandon -- id"

# Run in the host as root: add the key line to the user's authorized_keys if it
# is not there (a new file or directory is the user's, mode 0600 / 0700).
AUTHORIZE = r"""
import os, pwd, stat, sys
user, line = sys.argv[1], sys.argv[2]
try:
    entry = pwd.getpwnam(user)
except KeyError:
    sys.exit(f"{user} has no account in this host (its /etc/passwd)")

def give(fd):
    try:
        os.fchown(fd, entry.pw_uid, entry.pw_gid)
    except OSError:  # rootless without subordinate ids: only root is mapped, root's it stays
        pass

blob = line.split()[1]
here = os.path.join(entry.pw_dir, ".ssh")
try:
    try:
        os.mkdir(here, 0o700)
        made = True
    except FileExistsError:
        made = False
    directory = os.open(here, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    if made:
        give(directory)
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open("authorized_keys", flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=directory)
        give(fd)
    except FileExistsError:
        fd = os.open("authorized_keys", flags, dir_fd=directory)
    with open(fd, "r+b") as keys:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            sys.exit(f"{here}/authorized_keys is not a file")
        text = keys.read()
        if any(blob in row.split() for row in text.decode("utf-8", "replace").splitlines()):
            sys.exit(0)
        keys.seek(0, os.SEEK_END)
        keys.write((b"\n" if text and not text.endswith(b"\n") else b"") + line.encode() + b"\n")
except OSError as exc:
    sys.exit(f"cannot add the key to {here}/authorized_keys: {exc.strerror or exc}")
"""


def ssh_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", nargs="?", help="the host to log in to (e.g. www)")
    p.add_argument(
        "-u", "--user", help="log in as this topology user (default: the topology's first)"
    )
    p.add_argument(
        "--key",
        action="store_true",
        help="print the private key's path instead (with HOST: once it is accepted there)",
    )
    p.add_argument(
        "--known-hosts",
        action="store_true",
        help="print the known_hosts file's path instead (written afresh)",
    )
    p.add_argument(
        "argv",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND ...",
        help="a command to run instead of an interactive session; one word is a command "
        "line for the user's shell, several are run as they are (as netplay exec does)",
    )


def ssh(args: argparse.Namespace, session: Session) -> int:
    _options_after_host(args)
    printing = args.key or args.known_hosts
    if printing and args.argv:
        raise UsageError("--key and --known-hosts print a path and take no command", hint=EXAMPLE)
    if args.host is None and not printing:
        raise UsageError("no host given", hint=EXAMPLE)
    pg = session.playground(args)
    where = Path(pg.state.data) / CLIENT_DIR
    if args.host is None:  # only the paths
        known, key = write_known_hosts(pg, where), client_key(pg, where)
    else:
        pg.host(args.host)  # an unknown host: UnknownHostError
        user, port = login_user(pg, args.user), ssh_port(pg, args.host)
        known, key = write_known_hosts(pg, where), client_key(pg, where)
        if args.key or not printing:
            authorize(pg, args.host, user, key)
    if printing:
        paths = [key] * args.key + [known] * args.known_hosts
        session.out.write("".join(f"{path}\n" for path in paths))
        return 0
    argv = client_argv(
        user=user,
        address=_address(pg, args.host),
        port=port,
        key=key,
        known_hosts=known,
        command=args.argv,
    )
    session.out.flush()
    _exec_in_network(pg, args.host, argv)


def _options_after_host(args: argparse.Namespace) -> None:
    """``netplay ssh www -u ann --name NAME -- CMD``: take the options between
    the host and the ``--`` (or the command) too."""
    argv = list(args.argv)
    while argv[:1] and argv[0].startswith("-") and argv[0] != "--":
        word = argv.pop(0)
        flag, has_value, value = word.partition("=")
        if flag in ("--key", "--known-hosts") and not has_value:
            setattr(args, flag[2:].replace("-", "_"), True)
        elif flag in ("-u", "--user", "--name"):
            if not has_value:
                if not argv:
                    raise UsageError(f"{flag} needs a value", hint=EXAMPLE)
                value = argv.pop(0)
            setattr(args, "name" if flag == "--name" else "user", value)
        elif word.startswith("-u") and not word.startswith("--"):
            args.user = word[2:]
        else:
            raise UsageError(f"unknown option {word} before the command", hint=EXAMPLE)
    args.argv = argv[1:] if argv[:1] == ["--"] else argv


# -- what it needs -----------------------------------------------------------------


def ssh_port(pg: Playground, host: str) -> int:
    """The port of HOST's ssh service, which must be running."""
    declared = pg.topology.host(pg.host(host).name)
    service = next((s for s in declared.services if s.kind == KIND), None)
    if service is None:
        having = [h.name for h in pg.topology.hosts if any(s.kind == KIND for s in h.services)]
        raise ServiceError(
            f"the host {host!r} runs no ssh service",
            hint=f"hosts that do: {', '.join(having)}"
            if having
            else 'declare one in the topology: services = [{ kind = "ssh" }]',
        )
    status = pg.service(f"{host}/{service.name}")
    if status.state is not ServiceState.RUNNING:
        raise ServiceError(
            f"{status.id} is {status.state}",
            hint=f"start it with `netplay service start {status.id}`",
        )
    ports = [int(listen.split("/", 1)[1]) for listen in status.listens if listen.startswith("tcp/")]
    if not ports:
        raise ServiceError(f"{status.id} listens on no TCP port")
    return ports[0]


def login_user(pg: Playground, wanted: str | None) -> str:
    """``wanted``, a user of the topology, or its first user."""
    users = [user.name for user in pg.topology.users]
    if not users:
        raise UsageError(
            f"the playground {pg.name!r} has no users to log in as",
            hint="declare one in its topology: [users.NAME] (docs/topology.md)",
        )
    if wanted is None:
        return users[0]
    if wanted not in users:
        raise UsageError(
            f"the playground {pg.name!r} has no user {wanted!r}",
            hint=f"its users: {', '.join(users)}",
        )
    return wanted


def _address(pg: Playground, host: str) -> str:
    """The address HOST's name stands for (its first)."""
    addresses = pg.topology.primary_addresses(host)
    if not addresses:
        raise UsageError(f"the host {host!r} has no address to reach its ssh service at")
    return str(addresses[0])


def known_hosts_text(pg: Playground) -> str:
    """A known_hosts line per host key of each host whose ssh service made its keys:
    its short and full name and every address, with the port where it is not 22."""
    from netplay.services.engines.ssh import HOST_KEY_TYPES, KEYS_DIR, PORT

    topology = pg.topology
    services = {s.id: s for s in pg.services() if s.kind == KIND}
    lines = []
    for host in topology.hosts:
        found = [s for s in host.services if s.kind == KIND]
        if not found:
            continue
        status = services.get(f"{host.name}/{found[0].name}")
        listens = status.listens if status is not None else ()
        ports = [int(lst.split("/", 1)[1]) for lst in listens if lst.startswith("tcp/")] or [PORT]
        names = list(dict.fromkeys([host.name, topology.fqdn(host.name)]))
        names += [
            str(address.ip)
            for _net, attachment in topology.attachments_of(host.name)
            for address in attachment.addresses
        ]
        patterns = ",".join(
            name if port == PORT else f"[{name}]:{port}" for port in ports for name in names
        )
        keys = Path(pg.state.data) / fabric.SERVICE_DATA / host.name / KEYS_DIR
        for _algorithm, file in HOST_KEY_TYPES:
            with contextlib.suppress(OSError):
                public = (keys / f"{file}.pub").read_text().split()
                if len(public) >= 2:
                    lines.append(f"{patterns} {public[0]} {public[1]}\n")
    return "".join(lines)


def write_known_hosts(pg: Playground, where: Path) -> Path:
    """Write (afresh, atomically) the playground's known_hosts file in ``where``."""
    path = where / KNOWN_HOSTS
    text = known_hosts_text(pg)
    _directory(where)
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return path
    _write(path, text.encode(), 0o644)
    return path


def client_key(pg: Playground, where: Path) -> Path:
    """The playground's client key pair (``id_ed25519`` and ``.pub``), made at first use."""
    path = where / KEY_NAME
    _directory(where)
    with fabric.locked(where / ".lock"):
        if not path.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            key = Ed25519PrivateKey.generate()
            public = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            private = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            comment = f" netplay@{pg.name}\n".encode()
            _write(path.with_name(f"{KEY_NAME}.pub"), public + comment, 0o644)
            _write(path, private, 0o600)
    return path


def authorize(pg: Playground, host: str, user: str, key: Path) -> None:
    """Make the key pair at ``key`` accepted for ``user`` in ``host``: its public key in the
    user's ``~/.ssh/authorized_keys`` there, added once."""
    line = key.with_name(f"{KEY_NAME}.pub").read_text().strip()
    argv = [sys.executable, "-I", "-c", AUTHORIZE, user, line]
    done = pg.host(host).run(argv, timeout=AUTHORIZE_TIMEOUT_S)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"status {done.returncode}"])[-1]
        raise NetplayError(
            f"the playground's key cannot be made {user}'s on {host}: {said}",
            hint=f"see `netplay exec {host} -- ls -la ~{user}/.ssh`",
        )


def client_argv(
    *, user: str, address: str, port: int, key: Path, known_hosts: Path, command: Sequence[str]
) -> list[str]:
    """OpenSSH's ``ssh`` command line: no configuration file, agent or other key; the host
    key checked against ``known_hosts`` only; with a command, never a prompt."""
    options = {
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": os.devnull,
        "StrictHostKeyChecking": "yes",
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
        "ConnectTimeout": str(CONNECT_TIMEOUT_S),
        "LogLevel": "ERROR",
    }
    if command:
        options["BatchMode"] = "yes"
    argv = ["ssh", "-F", "none", "-i", str(key), "-p", str(port), "-l", user]
    for option, value in options.items():
        argv += ["-o", f"{option}={value}"]
    argv.append(address)
    if command:
        # one word is a command line for the user's shell (as with `ssh host 'a; b'`);
        # several are one command and its arguments, quoted so the shell keeps them
        argv += ["--", command[0] if len(command) == 1 else shlex.join(command)]
    return argv


def _exec_in_network(pg: Playground, host: str, argv: list[str]) -> NoReturn:
    """Replace this process with ``argv`` run in ``host``'s network namespace only."""
    program = shutil.which(argv[0])
    if program is None:
        raise MissingToolError(argv[0], "openssh-client")
    pg.realm.join()
    for ignored in (signal.SIGPIPE, signal.SIGXFSZ):  # Python's, not ssh's: as subprocess does
        signal.signal(ignored, signal.SIG_DFL)
    with fabric.netns(pg.paths.net_pin(host)):
        try:
            os.execv(program, argv)
        except OSError as exc:
            raise NetplayError(f"{program} cannot be run: {exc.strerror or exc}") from exc
    raise AssertionError("not reached")  # pragma: no cover


# -- files -------------------------------------------------------------------------


def _directory(where: Path) -> None:
    where.mkdir(mode=0o700, exist_ok=True)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with open(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
