"""Making, pinning, entering and removing the namespaces of a playground.

Hosts get network, mount and UTS namespaces; LAN switches only a network
namespace.  No process is left running for them: each namespace is pinned
by bind-mounting its namespace file, as ``ip netns add`` does, onto a file
in the playground's pin directory (a small tmpfs), so an idle host costs
only the kernel's memory for it.

One forked *factory* child makes them all, one after another.  It first
makes a template mount namespace (a slave copy of the machine's, without
any namespace pins in it, with the template's bind mounts: the CA bundles
that trust the playground's CA, for every host at once), and every host's
mount namespace is a copy of that template with the host's own bind mounts
(its /etc/hosts and /etc/resolv.conf, which :mod:`netplay.hosts` writes),
and /sys and /proc mounted anew for the host's network.

A host's writable directories (/etc, /var, /tmp, ... as :mod:`netplay.hosts`
chooses) are overlay filesystems of its own: the machine's directory below,
read-only, and the host's upper layer (in the data directory) above, which
takes every change, so that what a program writes there is the host's
alone.  An overlay shows only its lower directory's filesystem, not the
mounts below it, so the template's bind mounts that fall under one are
made again over it, in each host.  Every directory the view is made of is
opened before the first overlay is mounted: the upper layers and the
bind mounts' sources may lie under another overlaid directory (the data
directory is under /var), where a path would find the host's view of them
(an overlay is refused as an upper layer), not the machine's.

Rootless, the kernel refuses an overlay over a directory with mounts of
the machine below it (/run on most systems: they are locked in a user
namespace, and an overlay would uncover what they hide); such a directory
stays the machine's, shared, and ``up`` says so once.

The overlays are ``volatile``: they never sync their upper layer.  An
overlay's unmount would otherwise sync the whole filesystem of the data
directory, and the hosts' overlays go at ``down``: five per host (minutes
for a thousand hosts on this machine's disk).  So a program's fsync in a
host's /etc or /home does not reach the disk, and a crash of the machine
(not of netplay) may lose what the hosts wrote since the kernel last wrote
it back; the services' kept data is bind-mounted from the data directory,
not overlaid, and keeps its fsyncs.  The mark a volatile overlay leaves in
its work directory, which would refuse the next mount, is removed before
each mount.
For each namespace the child reports fds of its namespace files over a
pipe, and the parent pins them through /proc/CHILD/fd while the child goes
on to the next.  The machine's own /etc is never written.

A host may have its view made *later* (:attr:`HostSetup.later`): when a
program first enters it (:func:`enter_host`), not at ``up``.  Its seven
overlays, their layers' directories and its /sys are most of what a host
costs to make (about 10 ms of 12 on this machine's disk), and on a
playground of thousands of hosts most are never entered.  Until then its
mount namespace is the template's copy with its own /proc, and the parent
keeps what its view is made of in a file by its pins (``KEY.view``), with
the layer above's note for that moment (what to make for the host first:
its certificate, which :mod:`netplay.pki` issues then too); the first
program to enter makes the view under a lock on that file, then deletes
it; if it fails, the file says why from then on, and entering the
host fails with that reason rather than mount the view again over the part
already made.  Only netplay enters a host's mount namespace, so no program
sees a host before its view."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path

from netplay import _progress as progress
from netplay.fabric import _linux as linux
from netplay.fabric._state import HOST_PINS, SWITCH_PINS, Paths

log = logging.getLogger("netplay")

SYSCTLS_ALL = (
    # DAD would keep IPv6 addresses tentative for a second or more.
    ("ipv6/conf/all/accept_dad", "0"),
    ("ipv6/conf/default/accept_dad", "0"),
    ("ipv6/conf/all/accept_ra", "0"),
    ("ipv6/conf/default/accept_ra", "0"),
    ("ipv6/conf/default/router_solicitations", "0"),
    # a link set down and up again (netplay link --down/--up) keeps its addresses.
    ("ipv6/conf/all/keep_addr_on_down", "1"),
    ("ipv6/conf/default/keep_addr_on_down", "1"),
    # traceroute sends probes faster than the default ICMP rate limit allows.
    ("ipv4/icmp_ratelimit", "0"),
    ("ipv6/icmp/ratelimit", "0"),
    # ordinary users may ping inside a host, as on a desktop distribution.
    ("ipv4/ping_group_range", "0 2147483647"),
)
SYSCTLS_FORWARD = (
    ("ipv4/ip_forward", "1"),
    ("ipv6/conf/all/forwarding", "1"),
)
SYSCTLS_SWITCH = (
    ("ipv6/conf/default/disable_ipv6", "1"),
    # a switch forwards frames; it does not run the IP firewall (br_netfilter) on them.
    ("bridge/bridge-nf-call-iptables", "0"),
    ("bridge/bridge-nf-call-ip6tables", "0"),
    ("bridge/bridge-nf-call-arptables", "0"),
)
WINDOW = 64  # namespaces the factory may hold open while the parent pins them
UNPIN_THREADS = 16  # the threads that unmount the hosts' mount namespaces (see remove)
VIEW_FAILED = "failed: "  # a view file that says why the view could not be made
COVER_FLAGS = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
ETC = Path("/etc")


#: a bind mount: (what, over which path); read-only
Mount = tuple[Path, Path]
#: an overlay over a directory of the machine: (the directory, its upper layer, its work
#: directory); the layers as strings, made for every host of a large playground (14 Paths
#: a host were a second of line:10000's up) and made Paths only for a host being entered
Overlay = tuple[Path, str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSetup:
    """How the hosts' mount namespaces differ from the machine's: bind mounts
    for every host (in the template they are copied from) and for each, and
    what each must not see (:class:`Privacy`)."""

    template: tuple[Mount, ...] = ()
    mounts: Mapping[str, tuple[Mount, ...]] = field(default_factory=dict)
    privacy: Mapping[str, Privacy] = field(default_factory=dict)
    overlays: Mapping[str, tuple[Overlay, ...]] = field(default_factory=dict)
    #: the hosts whose view is made when a program first enters them, each with
    #: a note for the layer above, given to whoever enters it first (see
    #: :func:`enter_host`): what it makes for the host then (its certificate)
    later: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Privacy:
    """What a host must not see: directories ``covered`` by an empty read-only
    tmpfs in its mount namespace, but for the paths ``kept`` in them (its own
    certificate and key, say), bind-mounted back at their places: read-only,
    or writable where their flag says so."""

    covered: tuple[Path, ...] = ()
    kept: tuple[tuple[Path, bool], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NsSpec:
    """One namespace to make: a host (net, mnt, uts, with its overlays, bind
    mounts and privacy, made now or ``later``) or a switch (net only)."""

    key: str
    host: bool
    forward: bool = False
    ttl: int | None = None
    overlays: tuple[Overlay, ...] = ()
    mounts: tuple[Mount, ...] = ()
    privacy: Privacy = Privacy()
    later: str | None = None  # the view made at the first entry, with this note


def pins_of(paths: Paths, spec: NsSpec) -> list[str]:
    """The pin files of a namespace, in the order net, mnt, uts."""
    return paths.pins(spec.key, spec.host)


def _mount_points_under(prefixes: Sequence[str]) -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                points.append(point)
    return points


def _tmpfs(path: Path, flags: int) -> None:
    """Mount a private tmpfs at ``path`` (if none is there), mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if str(path) not in _mount_points_under([str(path)]):
        linux.mount("netplay", str(path), "tmpfs", flags, "mode=0700")
    linux.mount(None, str(path), None, linux.MS_PRIVATE)


def _pin_dir(path: Path) -> None:
    """Mount a small private tmpfs at ``path`` for the pins.

    The pins are thousands of empty files on a large playground: on tmpfs
    they cost nothing, where /run may be a disk (about 1 ms a file on the
    development machine).  Private, so no pin propagates to other mount
    namespaces.
    """
    _tmpfs(path, linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def fresh_layers(paths: Paths) -> Path:
    """The tmpfs that holds the hosts' layers to be forgotten at ``down`` (their
    /tmp and /run), mounted on first use; :func:`remove` unmounts it, and
    with it everything in it at once.  A disk would cost a directory made
    and removed per layer at every ``up`` and ``down``, where removing one
    can take milliseconds (a disk mounted with ``discard`` waits for the
    device); a machine's /tmp is often a tmpfs too."""
    _tmpfs(paths.fresh_dir, linux.MS_NODEV)
    return paths.fresh_dir


def _write_sysctls(spec: NsSpec) -> None:
    """Set the namespace's sysctls, best effort: IPv6 may be disabled, and in
    a user namespace some values are refused (ping_group_range beyond the
    mapped groups).  Opened under one fd of /proc/sys/net, without Python's
    text files: line:10000 writes more than a hundred thousand of them."""
    items = [*SYSCTLS_ALL]
    if spec.forward:
        items += SYSCTLS_FORWARD
    if spec.ttl is not None:  # before its interfaces exist: they take the default
        items += [
            ("ipv4/ip_default_ttl", str(spec.ttl)),
            ("ipv6/conf/default/hop_limit", str(spec.ttl)),
        ]
    if not spec.host:
        items += SYSCTLS_SWITCH
    net = os.open("/proc/sys/net", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for key, value in items:
            try:
                fd = os.open(key, os.O_WRONLY, dir_fd=net)
            except OSError:
                continue
            try:
                os.write(fd, value.encode())
            except OSError:
                pass
            finally:
                os.close(fd)
    finally:
        os.close(net)


def _factory(
    specs: Sequence[NsSpec],
    hide: Sequence[str],
    keep: str,
    template_mounts: Sequence[Mount],
    ready: int,
    go: int,
    rootless: bool,
) -> None:
    """The child: make each namespace and report an open fd for each of its files.

    It does not wait for the parent to pin one namespace before making the
    next: up to WINDOW of them are held open by fd while the parent pins them
    from /proc/PID/fd, so the two work side by side.
    """
    linux.ordered_namespaces_cpu()
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SLAVE)
    _hide(hide, keep)
    overlaid = {target for spec in specs for target, _upper, _work in spec.overlays}
    for source, target in template_mounts:
        if not _under(target, overlaid):
            _bind(source, target)
    template = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    views = _Views(template_mounts, rootless)
    shared: set[Path] = set()  # rootless: directories that cannot be the hosts' own
    held: collections.deque[list[int]] = collections.deque()
    for spec in specs:
        if spec.host:
            linux.setns(template, linux.CLONE_NEWNS)
            linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWNET | linux.CLONE_NEWUTS)
            linux.sethostname(spec.key)
            if spec.later is None:
                view = views.of(spec)
                for target in _make_view(view) - shared:
                    shared.add(target)
                    os.write(ready, f"w {target}\n".encode())
        else:  # a mount namespace too, only for the proc below
            linux.setns(template, linux.CLONE_NEWNS)
            linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWNET)
        # Every network namespace has its own /proc/sys/net/ipv4 and ipv6, and
        # in one proc all their dentries hang from the one /proc/sys/net, under
        # the same names: finding a new namespace's compared the name with
        # every other namespace's, so up cost the square of the hosts (12 s
        # of line:3000's 40).  A proc of the namespace's own has only its own.
        with contextlib.suppress(OSError):  # rootless, proc is not ours to mount
            linux.mount("proc", "/proc", "proc", COVER_FLAGS)
        _write_sysctls(spec)
        fds = [os.open(f"/proc/self/ns/{kind}", os.O_RDONLY) for kind in _kinds(spec)]
        held.append(fds)
        os.write(ready, ("r " + " ".join(map(str, fds)) + "\n").encode())
        if len(held) >= WINDOW:
            if os.read(go, 1) != b"g":
                return
            for fd in held.popleft():
                os.close(fd)
    while os.read(go, 1 << 16):  # keep the last ones open until all are pinned
        pass


def _hide(hide: Sequence[str], keep: str) -> None:
    """In the factory's mount namespace, unmount all that is mounted under the
    directories ``hide`` (the playgrounds' first: their pins), but ``keep``
    (the hosts' fresh layers: their overlays need it here).

    The playgrounds' directory itself may be a mount of its own (a tmpfs on
    /run/netplay where /run is a disk).  It stays, since the files the hosts
    bind are in it; but mounts made under its path before it, on the
    filesystem it covers (another playground's pins), cannot be reached by
    their paths while it is there.  So it is copied with all mounted on it,
    unmounted, those it covered are unmounted, and the copy is put back (as
    root: rootless, the machine's mounts are locked, and what they cover
    stays covered)."""
    base = hide[0]
    if base in _mount_points_under([base]):
        with contextlib.suppress(OSError):
            tree = linux.clone_tree(base)
            try:
                linux.umount(base)
                for point in reversed(_mount_points_under(hide)):
                    with contextlib.suppress(OSError):
                        linux.umount(point)
                linux.attach_tree(tree, base)
            finally:
                os.close(tree)
    for point in reversed(_mount_points_under(hide)):
        if point not in (base, keep):
            with contextlib.suppress(OSError):
                linux.umount(point)


def _under(path: Path, places: AbstractSet[Path]) -> bool:
    return any(path.is_relative_to(place) for place in places)


def _bind(source: Path | str, target: Path, writable: bool = False) -> None:
    linux.mount(str(source), str(target), None, linux.MS_BIND)
    if not writable:
        linux.mount(None, str(target), None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def _fd(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _View:
    """What a host's view is made of: its overlays, the bind mounts over them
    (the template's that fall under one, then its own), and its privacy."""

    key: str
    overlays: tuple[Overlay, ...]
    binds: tuple[Mount, ...]
    privacy: Privacy
    rootless: bool
    note: str = ""  # the layer above's, for the first entry (HostSetup.later)

    def dumps(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "overlays": [[str(target), upper, work] for target, upper, work in self.overlays],
                "binds": [list(map(str, bind)) for bind in self.binds],
                "covered": list(map(str, self.privacy.covered)),
                "kept": [[str(path), writable] for path, writable in self.privacy.kept],
                "rootless": self.rootless,
                "note": self.note,
            }
        )

    @classmethod
    def loads(cls, text: str) -> _View:
        raw = json.loads(text)
        return cls(
            key=raw["key"],
            overlays=tuple((Path(target), upper, work) for target, upper, work in raw["overlays"]),
            binds=tuple((Path(s), Path(t)) for s, t in raw["binds"]),
            privacy=Privacy(
                covered=tuple(map(Path, raw["covered"])),
                kept=tuple((Path(path), writable) for path, writable in raw["kept"]),
            ),
            rootless=raw["rootless"],
            note=raw["note"],
        )


class _Views:
    """Each host's :class:`_View`.  The template's bind mounts that fall under
    a host's overlays are found once for each set of overlaid directories:
    every host has the same, and 10,000 hosts took a second and a half."""

    def __init__(self, template_mounts: Sequence[Mount], rootless: bool) -> None:
        self._template = template_mounts
        self._rootless = rootless
        self._again: dict[frozenset[Path], tuple[Mount, ...]] = {}

    def of(self, spec: NsSpec) -> _View:
        mine = frozenset(target for target, _upper, _work in spec.overlays)
        again = self._again.get(mine)
        if again is None:
            again = tuple(mount for mount in self._template if _under(mount[1], mine))
            self._again[mine] = again
        return _View(
            key=spec.key,
            overlays=spec.overlays,
            binds=(*again, *spec.mounts),
            privacy=spec.privacy,
            rootless=self._rootless,
        )


def _make_view(view: _View) -> set[Path]:
    """In a new host's mount namespace, and its network namespace: its
    overlays, then its bind mounts, then its privacy (see the module's
    docstring), and a /sys of its network; return the directories that stay
    shared (rootless only)."""
    opened: list[int] = []
    shared = set()

    def open_path(path: Path) -> int:
        opened.append(os.open(path, os.O_PATH | os.O_CLOEXEC))
        return opened[-1]

    overlays = [(target, Path(upper), Path(work)) for target, upper, work in view.overlays]
    for target, upper, work in overlays:
        _make_layer(target, upper, work, view.rootless)
        if target == ETC:
            _name(upper / "hostname", view.key)
    try:
        layers = [
            (target, upper, open_path(target), open_path(upper), open_path(work))
            for target, upper, work in overlays
            if target.is_dir()
        ]
        sources = [(open_path(source), target) for source, target in view.binds]
        kept = [  # the binds of what is the host's own come from these
            (path, writable, path.is_dir(), open_path(path))
            for path, writable in view.privacy.kept
            if path.exists()
        ]
        for target, upper, lower_fd, upper_fd, work_fd in layers:
            options = (
                f"lowerdir={_fd(lower_fd)},upperdir={_fd(upper_fd)},workdir={_fd(work_fd)},volatile"
            )
            if view.rootless:  # trusted.* attributes are root's: the layers' go in user.*
                options = "userxattr," + options
            try:
                linux.mount("overlay", str(target), "overlay", 0, options)
            except OSError as exc:
                if view.rootless and exc.errno == errno.EINVAL:
                    shared.add(target)
                    continue
                raise OSError(
                    exc.errno,
                    f"cannot give the host {view.key} its own {target} "
                    f"(an overlay with its upper layer in {upper.parent}): {exc.strerror}; "
                    "the data directory must be on a local filesystem such as ext4, xfs, "
                    "btrfs or tmpfs (choose another with NETPLAY_DATA_DIR)",
                ) from exc
            if view.rootless:  # the owner may remove it from outside the user namespace
                with contextlib.suppress(OSError):
                    os.chmod(f"{_fd(work_fd)}/work", 0o700)  # overlay makes it mode 0
        own = {target for target, *_fds in layers} - shared
        for fd, target in sources:
            if _under(target, own):
                _something_to_cover(target)
            _bind(_fd(fd), target)
        _keep_private(view.privacy, kept)
    finally:
        for fd in opened:
            os.close(fd)
    with contextlib.suppress(OSError):
        linux.umount("/sys")
    linux.mount("sysfs", "/sys", "sysfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    return shared


def _something_to_cover(target: Path) -> None:
    """Where a file to be covered is missing, or a symbolic link to nothing
    (the machine's /etc/resolv.conf pointing to systemd-resolved's stub while
    it does not run), put an empty file in its place in the host's own
    layer: a bind mount follows the link, and needs something to cover."""
    if not target.exists():
        if target.is_symlink():
            target.unlink()
        target.touch(mode=0o644)


def _make_layer(target: Path, upper: Path, work: Path, rootless: bool) -> None:
    """Make an overlay's upper layer and work directory where they are
    missing; give the upper layer the mode (and, as root, the owner) of the
    directory it covers, as an overlay's top directory is its upper layer's
    (/tmp stays 1777, /root 0700); remove the mark a volatile overlay
    leaves, which would refuse the next mount."""
    try:
        below = os.stat(target)
    except OSError:
        return  # nothing to cover: the overlay is not mounted
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    have = os.stat(upper)
    if stat.S_IMODE(have.st_mode) != stat.S_IMODE(below.st_mode):
        os.chmod(upper, stat.S_IMODE(below.st_mode))
    if not rootless and (have.st_uid, have.st_gid) != (below.st_uid, below.st_gid):
        os.chown(upper, below.st_uid, below.st_gid)
    shutil.rmtree(work / "work" / "incompat", ignore_errors=True)


def _name(path: Path, host: str) -> None:
    """The host's /etc/hostname, in its upper layer: its name, as its UTS namespace has it."""
    text = host + "\n"
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return
    path.write_text(text)


def _keep_private(privacy: Privacy, kept: Sequence[tuple[Path, bool, bool, int]]) -> None:
    """Cover what a host must not see, and bring back what is its own (each
    path opened before it was covered: path, writable, a directory, fd)."""
    covered = [place for place in privacy.covered if place.is_dir()]
    for place in covered:
        linux.mount("netplay", str(place), "tmpfs", COVER_FLAGS, "mode=0755,size=64k")
    for path, writable, is_dir, fd in kept:
        if is_dir:  # its place in the empty cover
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        _bind(_fd(fd), path, writable)
    for place in covered:
        linux.mount(None, str(place), None, linux.MS_REMOUNT | linux.MS_RDONLY | COVER_FLAGS)


def _kinds(spec: NsSpec) -> tuple[str, ...]:
    return HOST_PINS if spec.host else SWITCH_PINS


def create(
    paths: Paths,
    specs: Sequence[NsSpec],
    template_mounts: Sequence[Mount] = (),
    meanwhile: Callable[[], object] = lambda: None,
) -> None:
    """Make and pin every namespace in ``specs`` (in this order); every host
    gets the ``template_mounts``, then its own.  ``meanwhile`` is the
    caller's work, done while the factory makes the first WINDOW namespaces,
    before they are pinned."""
    _pin_dir(paths.ns_dir)
    hide = [str(paths.base), "/run/netns"]
    pinned = [pins_of(paths, spec) for spec in specs]
    for pins in pinned:
        for pin in pins:
            os.close(os.open(pin, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600))
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            keep = str(paths.fresh_dir)
            _factory(specs, hide, keep, template_mounts, ready_w, go_r, not paths.root)
            status = 0
        except BaseException as exc:
            with contextlib.suppress(OSError):
                message = str(exc).replace("\n", " ")
                os.write(ready_w, f"e {message}\n".encode()[:500])
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(go_r)
    # the ip netns links, made while the factory works: where /run is a disk,
    # not a tmpfs, each cost about 1 ms on the development machine
    linking = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netplay-links")
    views = _Views(template_mounts, not paths.root)
    links = []
    try:
        meanwhile()
        with (
            open(ready_r, "rb", closefd=False) as reports,
            progress.steps("making namespaces", len(specs)) as step,
        ):
            for spec, pins in zip(specs, pinned, strict=True):
                answer = reports.readline().decode(errors="replace").split()
                while answer[:1] == ["w"]:
                    log.warning(
                        "%s stays the machine's in every host: a user namespace may not "
                        "cover the machine's mounts below it (run as root for hosts' own)",
                        " ".join(answer[1:]),
                    )
                    answer = reports.readline().decode(errors="replace").split()
                if not answer or answer[0] != "r":
                    message = " ".join(answer[1:]) or "the namespace factory died"
                    raise OSError(errno.EIO, message)
                if spec.later is not None:  # before its pins: enter_host finds a host by them
                    later = replace(views.of(spec), note=spec.later)
                    paths.view(spec.key).write_text(later.dumps())
                for fd, pin in zip(answer[1:], pins, strict=True):
                    linux.mount(f"/proc/{pid}/fd/{fd}", pin, None, linux.MS_BIND)
                link = paths.netns_link(spec.key)
                if link is not None:
                    links.append(linking.submit(_link, link, pins[0]))
                os.write(go_w, b"g")
                step()
    finally:
        os.close(ready_r)
        os.close(go_w)
        os.waitpid(pid, 0)
        linking.shutdown()
    for made in links:
        made.result()  # the first failure, if any


def _link(link: Path, pin: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(pin)


def inodes(pins: Sequence[Path]) -> set[int]:
    """The namespace inodes behind the pins that are still mounted."""
    found = set()
    devices: dict[Path, int] = {}  # of the pins' directories (one, but after a failed up)
    for pin in pins:
        try:
            st = os.stat(pin)
            if pin.parent not in devices:
                devices[pin.parent] = os.stat(pin.parent).st_dev
        except OSError:
            continue
        if st.st_dev != devices[pin.parent]:  # an nsfs file is mounted there
            found.add(st.st_ino)
    return found


def remove(paths: Paths, pins: Sequence[Path], links: Sequence[Path]) -> None:
    """Unpin and delete; missing or already unpinned pins are fine; unmount
    the hosts' fresh layers.

    One lazy unmount of the pins' tmpfs takes every pin mounted in it: an
    unmount per pin took 0.5 ms each at 5,000 hosts, and more the more
    mounts there were.  But the hosts' mount namespaces go first, from
    several threads: a mount namespace is torn down by the task that drops
    its last reference (its pin), which then waits for an RCU grace period
    (the kernel's ``namespace_unlock``), so the one unmount tore down every
    host's in one thread, one after another (9.3 s of line:10000's ``down``
    here); from sixteen threads the waits overlap (1.6 s).  Pins elsewhere
    (there is no tmpfs after an ``up`` that failed before making it) are
    unmounted one by one.
    """
    for link in links:
        with contextlib.suppress(FileNotFoundError):
            if link.is_symlink():
                link.unlink()
    with contextlib.suppress(OSError):  # none, if up failed before it was made
        linux.umount(str(paths.fresh_dir))
    mounts = [str(pin) for pin in pins if Paths.kind_of(pin) == "mnt"]
    if mounts:
        workers = min(UNPIN_THREADS, len(mounts))
        with concurrent.futures.ThreadPoolExecutor(workers, "netplay-unpin") as pool:
            for _ in pool.map(_unmount_quietly, mounts):
                pass
    try:
        linux.umount(str(paths.ns_dir))
    except OSError:
        left = pins
    else:
        left = [pin for pin in pins if os.path.dirname(pin) != str(paths.ns_dir)]
    for pin in left:
        with contextlib.suppress(OSError):
            linux.umount(str(pin))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pin)


def _unmount_quietly(pin: str) -> None:
    with contextlib.suppress(OSError):  # not mounted: an up that failed, say
        linux.umount(pin)


@contextlib.contextmanager
def netns(pin: Path) -> Iterator[None]:
    """Run the body with this thread inside the network namespace at ``pin``."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(pin, os.O_RDONLY)
    try:
        linux.setns(target, linux.CLONE_NEWNET)
        try:
            yield
        finally:
            linux.setns(home, linux.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def enter_host(paths: Paths, key: str, first: Callable[[str], object] | None = None) -> None:
    """Move this (single-threaded) process into a host's network, UTS and
    mount namespaces, as ``nsenter`` does; keep its working directory.  The
    first to enter a host whose view waits makes it (see the module's
    docstring), having called ``first`` with the host's note
    (:attr:`HostSetup.later`) before it entered anything, under the view's
    lock: the layer above's part of a first entry, done once."""
    pins = ((paths.net_pin(key), linux.CLONE_NEWNET), (paths.uts_pin(key), linux.CLONE_NEWUTS))
    fds = [(os.open(pin, os.O_RDONLY), kind) for pin, kind in pins]
    fds.append((os.open(paths.mnt_pin(key), os.O_RDONLY), linux.CLONE_NEWNS))
    try:
        cwd: str | None = os.getcwd()
    except FileNotFoundError:  # deleted: the host's root, where entering leaves it
        cwd = None
    with _waiting_view(paths, key, first) as view:
        try:
            for fd, kind in fds:
                linux.setns(fd, kind)
        finally:
            for fd, _kind in fds:
                os.close(fd)
        if view is not None:
            _make_view(view)
    if cwd is not None:
        with contextlib.suppress(OSError):
            os.chdir(cwd)


@contextlib.contextmanager
def _waiting_view(
    paths: Paths, key: str, first: Callable[[str], object] | None
) -> Iterator[_View | None]:
    """The view the host waits for, held under its lock, once ``first`` has
    been called with its note, and deleted if the body (which makes it)
    succeeds; None if it has its view."""
    path = paths.view(key)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    # the directory, for the unlink: the host's mount namespace does not show it
    directory = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:  # made while this one waited for the lock
            yield None
            return
        with open(fd, encoding="utf-8", closefd=False) as f:
            text = f.read()
        if text.startswith(VIEW_FAILED):
            raise OSError(
                errno.EIO,
                f"the host's own filesystem could not be made ({text.removeprefix(VIEW_FAILED)}); "
                "take the playground down and up again",
            )
        view = _View.loads(text)
        if first is not None:  # nothing is mounted yet: if it fails, the next entry tries again
            first(view.note)
        try:
            yield view
        except BaseException as exc:
            # What was mounted stays in the host, and making the view again would
            # stack overlays on it: from now on, entering the host says why it cannot.
            with contextlib.suppress(OSError):  # the failure to tell is the view's
                flags = os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC
                with open(os.open(path.name, flags, dir_fd=directory), "w") as f:
                    f.write(VIEW_FAILED + (str(exc) or type(exc).__name__))
            raise
        os.unlink(path.name, dir_fd=directory)
    finally:
        os.close(directory)
        os.close(fd)
