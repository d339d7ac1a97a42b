"""The public names are the ones we mean to export."""

import ast
import subprocess
import sys
from pathlib import Path

import netplay
import netplay.fabric
import netplay.hosts
import netplay.pki
import netplay.protocols
import netplay.services
import netplay.testing
import netplay.topology


def test_top_level_names() -> None:
    assert set(netplay.__all__) == {
        "AlreadyRunningError",
        "CableFaults",
        "CommandFailedError",
        "FabricError",
        "Host",
        "HostStatus",
        "InterfaceState",
        "InterfaceStatus",
        "LocalProtocolError",
        "MissingKernelFeatureError",
        "MissingToolError",
        "Mode",
        "NetplayError",
        "NetworkStatus",
        "NoPrivilegesError",
        "NotRunningError",
        "PkiError",
        "Playground",
        "PlaygroundState",
        "ProtocolError",
        "RemoteProtocolError",
        "ServiceError",
        "ServiceState",
        "ServiceStatus",
        "Spawned",
        "StateError",
        "Status",
        "Summary",
        "Topology",
        "TopologyError",
        "UnknownHostError",
        "UsageError",
        "from_data",
        "load",
        "to_data",
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
            netplay.ProtocolError,
            netplay.StateError,
        )
    }
    assert len(set(statuses.values())) == len(statuses)
    assert issubclass(netplay.MissingKernelFeatureError, netplay.NetplayError)
    for side in (netplay.LocalProtocolError, netplay.RemoteProtocolError):
        assert issubclass(side, netplay.ProtocolError)
    assert not issubclass(netplay.LocalProtocolError, netplay.RemoteProtocolError)
    assert netplay.RemoteProtocolError("x", reply="-ERR x").reply == "-ERR x"
    assert netplay.LocalProtocolError("x").reply is None


def test_pki_names() -> None:
    assert set(netplay.pki.__all__) == {
        "DEMO_USER",
        "Plan",
        "Store",
        "Wanted",
        "bundles",
        "trust_targets",
        "wanted",
    }


def test_topology_names() -> None:
    assert "load" in netplay.topology.__all__ and "Topology" in netplay.topology.__all__


def test_layer_names() -> None:
    """What the layers offer each other; their modules behind are private."""
    assert set(netplay.fabric.__all__) == {
        "DIRECTIONS",
        "SERVICE_DATA",
        "HostSetup",
        "LiveInterface",
        "Mount",
        "Overlay",
        "Paths",
        "Privacy",
        "Realm",
        "alive",
        "base_dir",
        "build",
        "claim",
        "die_with_parent",
        "disturb",
        "end_keeper",
        "enter_host",
        "fresh_layers",
        "hosts_pinned",
        "in_session",
        "interfaces",
        "list_names",
        "locked",
        "made_by",
        "many_users",
        "name_process",
        "namespaces_available",
        "namespaces_of",
        "netns",
        "nft_path",
        "note_run_netns",
        "one_user_mapped",
        "prepare_names",
        "process",
        "process_name",
        "read_raw",
        "read_state",
        "remove_path",
        "remove_state",
        "remove_tree",
        "salvage",
        "start_keeper",
        "subordinate_ids",
        "teardown",
        "update_state",
        "write_state",
    }
    assert set(netplay.services.__all__) == {
        "ACTIONS",
        "Connections",
        "Context",
        "Engine",
        "Group",
        "HealthError",
        "Start",
        "by_engine",
        "contexts",
        "control",
        "engine_of",
        "preload",
        "read_log",
        "register",
        "registered",
        "remove_files",
        "start_all",
        "status",
    }
    assert set(netplay.hosts.__all__) == {
        "Host",
        "Ready",
        "Spawned",
        "forget",
        "remove_files",
        "write_files",
    }
    assert set(netplay.testing.__all__) == {"cannot_build", "wait_for_service", "wait_until"}


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


def test_no_package_reaches_into_another_s_private_modules() -> None:
    """Only the fabric imports pyroute2; a package uses another's public names
    (the typed model, ``netplay._model``, is shared by the layers below the
    facade), and the facade's own modules are netplay's alone."""
    root = Path(netplay.__file__).parent
    for path in root.rglob("*.py"):
        inside = path.relative_to(root).parts
        package = inside[0] if len(inside) > 1 else ""
        for module in _imports(path):
            parts = module.split(".")
            if package != "fabric":
                assert parts[0] != "pyroute2", f"{path}: {module}"
            if parts[0] != "netplay" or len(parts) < 2:
                continue
            if parts[1].startswith("_") and parts[1] != "_model":
                assert package == "", f"{path} imports netplay's own {module}"
            private = [p for p in parts[2:] if p.startswith("_")]
            assert parts[1] == package or not private, f"{path} imports {module}"


def test_the_plugin_loads_nothing_of_the_playground() -> None:
    """pytest loads the plugin in every session where netplay is installed."""
    code = (
        "import sys, netplay.testing._plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dns', 'pyroute2') "
        "or m.startswith(('netplay._playground', 'netplay.fabric'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout == "[]\n", loaded.stdout


def test_protocols_names_and_a_cheap_import() -> None:
    assert set(netplay.protocols.__all__) == {
        "END",
        "NEED_DATA",
        "LocalProtocolError",
        "ProtocolError",
        "RemoteProtocolError",
        "Sentinel",
    }
    assert netplay.protocols.ProtocolError is netplay.ProtocolError
    # the toolkit needs nothing beyond netplay.errors: no dnspython, no playground
    code = (
        "import sys, netplay.protocols, netplay.protocols.framing, netplay.protocols.zen; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dns', 'pyroute2') "
        "or m.startswith(('netplay.services', 'netplay.programs', 'netplay._playground'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout == "[]\n", loaded.stdout
