"""Turning a topology into kernel objects (namespaces, veths, bridges,
addresses, routes, NAT, faults) and removing them again.

This is what the other layers use of it; the modules behind it are private:

- where playgrounds keep things: :class:`Paths`, :func:`base_dir` (this
  user's playgrounds), :func:`list_names`, :data:`SERVICE_DATA`;
- the state file: :func:`read_state`, :func:`write_state`,
  :func:`update_state`, and :func:`read_raw` and :func:`salvage` for one
  that is damaged or of another version; :func:`claim` while a new one is
  claimed;
- reaching the namespaces, as root or rootless: :class:`Realm`,
  :func:`start_keeper`, :func:`enter_host`, :func:`netns`,
  :func:`namespaces_available`; the users a rootless playground maps:
  :func:`subordinate_ids`, :func:`one_user_mapped`, :func:`many_users`;
- building and removing: :func:`nft_path` (checked before), :func:`made_by`,
  :func:`note_run_netns`, :func:`build` (the hosts' :class:`HostSetup`: bind
  mounts, :class:`Overlay` and :class:`Privacy`; :func:`fresh_layers` for
  the overlays' layers forgotten at ``down``),
  :func:`teardown`,
  :func:`end_keeper`, :func:`remove_state`, :func:`remove_path`,
  :func:`remove_tree`, :func:`locked` (a lock file),
  :func:`hosts_pinned`;
- reading interfaces back: :func:`interfaces` (:class:`LiveInterface`);
- link faults: :func:`disturb`;
- processes named by pid and start time: :func:`alive`, :func:`process`,
  those of a session: :func:`in_session`, :func:`die_with_parent`, and
  their names in ``ps``: :func:`name_process`, :func:`process_name`,
  :func:`prepare_names`.
"""

from netplay.fabric._faults import DIRECTIONS, disturb
from netplay.fabric._lifecycle import (
    build,
    end_keeper,
    hosts_pinned,
    locked,
    made_by,
    namespaces_of,
    note_run_netns,
    remove_path,
    remove_state,
    remove_tree,
    teardown,
)
from netplay.fabric._linux import die_with_parent
from netplay.fabric._live import LiveInterface, interfaces
from netplay.fabric._namespaces import (
    HostSetup,
    Mount,
    Overlay,
    Privacy,
    enter_host,
    fresh_layers,
    netns,
)
from netplay.fabric._nft import nft_path
from netplay.fabric._procs import (
    alive,
    in_session,
    name_process,
    prepare_names,
    process,
    process_name,
)
from netplay.fabric._state import (
    SERVICE_DATA,
    Paths,
    base_dir,
    claim,
    list_names,
    read_raw,
    read_state,
    salvage,
    update_state,
    write_state,
)
from netplay.fabric._userns import (
    Realm,
    many_users,
    one_user_mapped,
    start_keeper,
    subordinate_ids,
)
from netplay.fabric._userns import available as namespaces_available

__all__ = [
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
]
