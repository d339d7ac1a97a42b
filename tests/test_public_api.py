"""The public names are the ones we mean to export."""

import netplay
import netplay.pki
import netplay.topology


def test_top_level_names() -> None:
    assert set(netplay.__all__) == {
        "AlreadyRunningError",
        "CommandFailedError",
        "FabricError",
        "Host",
        "MissingKernelFeatureError",
        "MissingToolError",
        "NetplayError",
        "NoPrivilegesError",
        "NotRunningError",
        "PkiError",
        "Playground",
        "ServiceError",
        "Topology",
        "TopologyError",
        "UnknownHostError",
        "UsageError",
        "load",
    }
    for name in netplay.__all__:
        assert getattr(netplay, name) is not None


def test_errors_have_distinct_exit_statuses() -> None:
    statuses = {
        cls.__name__: cls.exit_status
        for cls in (
            netplay.UsageError,
            netplay.NoPrivilegesError,
            netplay.MissingToolError,
            netplay.AlreadyRunningError,
            netplay.TopologyError,
            netplay.UnknownHostError,
            netplay.NotRunningError,
            netplay.CommandFailedError,
            netplay.FabricError,
            netplay.PkiError,
            netplay.ServiceError,
        )
    }
    assert len(set(statuses.values())) == len(statuses)
    assert issubclass(netplay.MissingKernelFeatureError, netplay.NetplayError)


def test_pki_names() -> None:
    assert set(netplay.pki.__all__) == {
        "DEMO_USER",
        "Store",
        "Wanted",
        "bundles",
        "trust_targets",
        "wanted",
    }


def test_topology_names() -> None:
    assert "load" in netplay.topology.__all__ and "Topology" in netplay.topology.__all__
