"""What ``status`` and ``list`` show, assembled from the layers into the typed model.

The topology says what should be; the kernel (through
:func:`netplay.fabric.interfaces`) says what each interface is now; the
state file says which faults are applied; the service layer says how each
service is.  Nothing here changes anything.
"""

from __future__ import annotations

from types import MappingProxyType

from netplay import fabric, services
from netplay._model import (
    HostStatus,
    InterfaceState,
    InterfaceStatus,
    NetworkStatus,
    PlaygroundState,
    State,
    Status,
    Summary,
)
from netplay.errors import StateError
from netplay.fabric import LiveInterface, Paths, Realm
from netplay.topology import Topology


def status(paths: Paths, topology: Topology, state: State) -> Status:
    """The whole playground: hosts and their interfaces, networks, faults, services."""
    realm = Realm(state.keeper, state.userns)
    live = realm.call(fabric.interfaces, paths, [h.name for h in topology.hosts])
    hosts = []
    index = topology.by_host()
    for host in topology.hosts:
        interfaces = []
        for net, att in index[host.name]:
            seen = live[host.name].get(att.ifname)
            if seen is None:
                seen = LiveInterface(
                    state=InterfaceState.MISSING,
                    mtu=net.mtu,
                    addresses=tuple(str(a) for a in att.addresses),
                )
            interfaces.append(
                InterfaceStatus(
                    name=att.ifname,
                    network=net.name,
                    addresses=seen.addresses,
                    state=seen.state,
                    mtu=seen.mtu,
                )
            )
        hosts.append(
            HostStatus(
                name=host.name, forward=host.forward, nat=host.nat, interfaces=tuple(interfaces)
            )
        )
    networks = tuple(
        NetworkStatus(
            name=n.name, kind=n.kind, mtu=n.mtu, hosts=tuple(a.host for a in n.attachments)
        )
        for n in topology.networks
    )
    return Status(
        name=paths.name,
        mode=state.mode,
        topology=topology.name,
        one_user=state.keeper is not None and fabric.one_user_mapped(state.keeper.pid),
        hosts=tuple(hosts),
        networks=networks,
        faults=MappingProxyType(dict(state.faults)),
        services=services.status(paths, topology, state.runners),
    )


def running(state: State) -> bool:
    """Running: detached and ready, or its owner (building it, or in the foreground)
    is alive; a rootless one also needs its keeper."""
    if state.keeper is not None and not fabric.alive(state.keeper.pid, state.keeper.start):
        return False
    if state.ready and state.detached:
        return True
    return fabric.alive(state.owner.pid, state.owner.start)


def summary(name: str) -> Summary:
    """One playground of this user, for ``netplay list``."""
    paths = Paths.of(name)
    try:
        state = fabric.read_state(paths)
    except StateError:
        state = None
    if state is None:
        return Summary(name=name, state=PlaygroundState.CRASHED, mode=None, spec="?", hosts=0)
    return Summary(
        name=name,
        state=PlaygroundState.RUNNING if running(state) else PlaygroundState.CRASHED,
        mode=state.mode,
        spec=state.source.spec,
        hosts=fabric.hosts_pinned(state.pins),
    )
