"""The typed model and its JSON form: round trips, fields named when they do not
fit, and a state file of another version refused clearly (no root needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netplay import StateError
from netplay._model import (
    SCHEMA,
    CableFaults,
    Mode,
    Process,
    ServiceState,
    Source,
    State,
    from_data,
    to_data,
)
from netplay.fabric import Paths, read_state, salvage, write_state
from netplay.topology import Topology, load


def _state(**changes: object) -> State:
    values: dict[str, object] = {
        "name": "t",
        "mode": Mode.ROOT,
        "source": Source(spec="book"),
        "owner": Process(pid=1, start=2),
        "created": 1.5,
        "data": "/d",
    }
    values.update(changes)
    return State(**values)  # type: ignore[arg-type]


def _paths(tmp_path: Path) -> Paths:
    return Paths(name="t", root=True, base=tmp_path / "run", data_base=tmp_path / "data")


@pytest.mark.parametrize("spec", ["book", "line:30", "star:4"])
def test_topologies_survive_json(spec: str) -> None:
    topology = load(spec)
    assert from_data(Topology, json.loads(json.dumps(to_data(topology)))) == topology


def test_a_state_survives_its_file(tmp_path: Path) -> None:
    state = _state(
        keeper=Process(pid=7, start=None),
        userns=4026531837,
        faults={"h1/lan": CableFaults(loss=20.0, down=True)},
        runners={"www/http": Process(pid=9, start=10)},
        tag="netplay.testing",
    )
    paths = _paths(tmp_path)
    write_state(paths, state)
    assert read_state(paths) == state
    assert json.loads(paths.state.read_text())["schema"] == SCHEMA


def test_enums_are_written_by_value_and_read_back() -> None:
    assert to_data(ServiceState.RUNNING) == "running"
    assert from_data(ServiceState, "failed") is ServiceState.FAILED
    with pytest.raises(ValueError, match="'asleep' is not a ServiceState"):
        from_data(ServiceState, "asleep")


def test_what_does_not_fit_is_named_by_its_field() -> None:
    data = to_data(_state())
    data["owner"]["pid"] = "one"
    with pytest.raises(ValueError, match=r"State\.owner\.pid: expected int, found 'one'"):
        from_data(State, data)
    del data["owner"]
    with pytest.raises(ValueError, match="the field 'owner' is missing"):
        from_data(State, data)
    data = to_data(_state())
    data["surprise"] = 1
    with pytest.raises(ValueError, match="unknown field 'surprise'"):
        from_data(State, data)


def test_a_state_file_of_another_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.dir.mkdir(parents=True)
    paths.state.write_text(json.dumps({"name": "t", "pins": [], "pid": 5}))
    with pytest.raises(StateError) as caught:
        read_state(paths)
    assert "another version of netplay (its state file is version 0" in str(caught.value)
    assert caught.value.hint == "remove it with `netplay down --name t`"
    assert caught.value.exit_status == 14


def test_a_damaged_state_file_is_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.dir.mkdir(parents=True)
    paths.state.write_text(json.dumps({**to_data(_state()), "mode": "sideways"}))
    with pytest.raises(StateError, match="is damaged"):
        read_state(paths)


def test_what_down_needs_is_salvaged_from_an_old_state_file(tmp_path: Path) -> None:
    old = {"pins": ["/run/netplay/t/ns/h1.net"], "pid": 5, "pid_start": 6, "keeper": 8}
    state = salvage(_paths(tmp_path), old)
    assert state.pins == ["/run/netplay/t/ns/h1.net"]
    assert state.owner == Process(pid=5, start=6)
    assert state.keeper == Process(pid=8, start=None)
    assert salvage(_paths(tmp_path), {"pins": "nonsense", "keeper": True}).pins == []
