"""Pure tests of the topology model, the TOML format and the generators."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netplay.errors import TopologyError
from netplay.topology import check, line, load, loads, star

BOOK_ADDRESSES = {
    "h1": "192.168.1.11",
    "h2": "192.168.1.12",
    "h3": "192.168.1.13",
    "h4": "192.168.1.14",
    "modemA": "10.25.1.65",
    "modemB": "10.25.1.66",
    "isp": "10.25.1.1",
    "backbone": "10.1.1.1",
    "example": "10.130.1.1",
    "ftp": "10.130.1.2",
    "mail": "10.130.1.3",
    "www": "10.130.1.4",
}


def test_book_has_the_twelve_hosts_of_the_design() -> None:
    book = load("book")
    assert [h.name for h in book.hosts] == list(BOOK_ADDRESSES)
    for name, address in BOOK_ADDRESSES.items():
        assert str(book.primary_addresses(name)[0]) == address
    assert book.host("modemA").nat == "isp-lan"
    assert book.host("modemB").nat == "isp-lan"
    assert book.domain == "example.com"


def test_book_is_dual_stack_with_routed_home_prefixes() -> None:
    book = load("book")
    for host in book.hosts:
        versions = {
            a.version for _net, att in book.attachments_of(host.name) for a in att.addresses
        }
        assert versions == {4, 6}, host.name
    h1 = book.primary_addresses("h1")[1]
    h4 = book.primary_addresses("h4")[1]
    assert h1.version == h4.version == 6
    assert ipaddress.ip_network(f"{h1}/64", strict=False) != ipaddress.ip_network(
        f"{h4}/64", strict=False
    ), "the two homes must get different IPv6 prefixes"
    assert all(a.is_private for a in (h1, h4))


def test_etc_hosts_names_every_host_by_short_and_full_name() -> None:
    text = load("book").etc_hosts()
    assert "10.130.1.4\twww.example.com www" in text
    assert "192.168.1.11\th1.example.com h1" in text
    assert text.startswith("127.0.0.1\tlocalhost")


def test_line_routes_are_summarised() -> None:
    topo = line(100)
    assert len(topo.hosts) == 100 and len(topo.networks) == 99
    middle = topo.host("h50")
    assert len(middle.routes) == 2 * (1 + 3)  # default + a block per bit of 49, both families
    assert all(len(host.routes) <= 2 * (1 + 7) for host in topo.hosts)  # at most log2(100) + 1
    assert all(net.kind == "link" for net in topo.networks)


@pytest.mark.parametrize("count", [2, 3, 64, 100])
def test_line_routes_send_every_address_the_right_way(count: int) -> None:
    """By longest prefix, as the kernel chooses: each other host's address goes to
    the neighbour on its side (the next ones by their peer routes, not looked at)."""
    topo = line(count)
    for i in range(1, count + 1):
        routes = topo.host(f"h{i}").routes
        for net in (
            ipaddress.ip_network("10.64.0.0/10"),
            ipaddress.ip_network("fd6e:7000:ffff::/64"),
        ):
            for j in set(range(1, count + 1)) - {i - 1, i, i + 1}:
                chosen = max(
                    (r for r in routes if r.to.version == net.version and net[j] in r.to),
                    key=lambda r: r.to.prefixlen,
                )
                assert chosen.via == net[i + 1 if j > i else i - 1], (i, j, chosen)


def test_star_puts_every_host_on_one_lan() -> None:
    topo = star(10)
    assert len(topo.networks) == 1 and len(topo.networks[0].attachments) == 10


@pytest.mark.parametrize("spec", ["line:0", "line:x", "star:999999"])
def test_bad_generator_specs(spec: str) -> None:
    with pytest.raises(TopologyError, match="number of hosts"):
        load(spec)


GOOD = """\
name = "tiny"

[hosts.a]
routes = [{ to = "default", via = "10.0.0.2" }]

[hosts.b]
forward = true

[lans.net.hosts]
a = ["10.0.0.1/24"]
b = ["10.0.0.2/24"]
"""


def test_a_small_file_loads() -> None:
    topo = loads(GOOD, source="tiny.toml")
    assert topo.name == "tiny"
    assert topo.network("net").attachment("b") is not None


BROKEN = [
    # (what, text, expected line, expected words in the message)
    ("syntax", GOOD.replace('name = "tiny"', "name = "), 1, "syntax"),
    (
        "unknown field",
        GOOD.replace("forward = true", "forwrd = true"),
        7,
        "hosts.b.forwrd: unknown field",
    ),
    ("wrong type", GOOD.replace("forward = true", 'forward = "yes"'), 7, "must be true or false"),
    (
        "bad address",
        GOOD.replace("10.0.0.1/24", "10.0.0.300/24"),
        10,
        "'10.0.0.300/24' is not an IP address",
    ),
    ("undeclared host", GOOD + 'c = ["10.0.0.3/24"]\n', 12, "unknown host 'c'"),
    ("duplicate address", GOOD.replace("10.0.0.2/24", "10.0.0.1/24"), 11, "already used by a"),
    (
        "outside the subnet",
        GOOD.replace("10.0.0.2/24", "10.9.0.2/24"),
        11,
        "not in the LAN's subnet",
    ),
    (
        "unreachable gateway",
        GOOD.replace('via = "10.0.0.2"', 'via = "10.7.7.7"'),
        4,
        "gateway 10.7.7.7",
    ),
    (
        "nat on a foreign network",
        GOOD.replace("forward = true", 'forward = true\nnat = "wan"'),
        8,
        "no network is named 'wan'",
    ),
    (
        "a TTL of no hops",
        GOOD.replace("forward = true", "forward = true\nttl = 0"),
        8,
        "hosts.b.ttl: must be 1 to 255 hops, not 0",
    ),
    (
        "a TTL past one byte",
        GOOD.replace("forward = true", "forward = true\nttl = 256"),
        8,
        "must be 1 to 255 hops, not 256",
    ),
    ("a TTL in words", GOOD.replace("forward = true", 'forward = true\nttl = "64"'), 8, "hops"),
    (
        "bad mtu",
        GOOD.replace("[lans.net.hosts]", "[lans.net]\nmtu = 100\n[lans.net.hosts]"),
        10,
        "MTU 100 is out of range",
    ),
    (
        "link of three",
        GOOD.replace("[lans.net.hosts]", "[links.net.hosts]") + 'c = "10.0.0.3"\n',
        9,
        "exactly two hosts",
    ),
    (
        "bad host name",
        GOOD.replace("[hosts.b]", "[hosts.2b]").replace("b = [", "2b = ["),
        6,
        "not a valid host name",
    ),
    ("a space in the domain", 'domain = "exa mple.com"\n' + GOOD, 1, "not a domain name"),
    ("an empty domain", 'domain = ""\n' + GOOD, 1, "domain: '' is not a domain name"),
    (
        "a bad zone origin",
        GOOD + '[dns.zones."bad zone"]\nrecords = []\n',
        12,
        "dns.zones.bad zone: 'bad zone' is not a domain name",
    ),
    (
        "names that differ in case",
        GOOD.replace("[hosts.b]", "[hosts.A]").replace("b = [", "A = ["),
        6,
        "the same name as 'a'",
    ),
    (
        "a name ending in a newline",
        GOOD.replace("[hosts.b]", '[hosts."b\\n"]').replace("b = [", '"b\\n" = ['),
        None,
        "not a valid host name",
    ),
    ("a network address", GOOD.replace("10.0.0.2/24", "10.0.0.0/24"), 11, "its network's own"),
    ("a broadcast address", GOOD.replace("10.0.0.2/24", "10.0.0.255/24"), 11, "broadcast"),
    ("a loopback address", GOOD.replace("10.0.0.2/24", "127.0.0.2/24"), 11, "a loopback"),
    ("a multicast address", GOOD.replace("10.0.0.2/24", "224.0.0.9/24"), 11, "a multicast"),
    ("a link-local address", GOOD.replace("10.0.0.2/24", "169.254.0.2/24"), 11, "link-local"),
    ("everything", GOOD.replace("10.0.0.2/24", "0.0.0.0/0"), 11, "unspecified"),
    (
        "one address on two LANs of a host",
        GOOD + '[lans.other.hosts]\nb = ["10.0.0.2/24"]\n',
        13,
        "has 10.0.0.2 on net already",
    ),
    (
        "a route via the host's own address",
        GOOD.replace('via = "10.0.0.2"', 'via = "10.0.0.1"'),
        4,
        "10.0.0.1 is a's own address",
    ),
    (
        "a route twice",
        GOOD.replace('"10.0.0.2" }]', '"10.0.0.2" }, { to = "0.0.0.0/0", via = "10.0.0.2" }]'),
        4,
        "a second route to 0.0.0.0/0",
    ),
]


@pytest.mark.parametrize(("what", "text", "line", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_files_name_file_line_and_field(
    what: str, text: str, line: int | None, words: str
) -> None:
    with pytest.raises(TopologyError) as info:
        loads(text, source="broken.toml")
    message = str(info.value)
    where = f"broken.toml:{line}: " if line else "broken.toml: "
    assert message.startswith(where), message
    assert words in message, message


WEB = GOOD.replace("forward = true", 'forward = true\nservices = [{ kind = "http" }]')
SITES = [
    ("no such host", '[sites."a.test"]\nhost = "zz"\napp = "m:a"\n', "there is no host 'zz'"),
    ("no web server", '[sites."a.test"]\nhost = "a"\napp = "m:a"\n', "no http or https"),
    ("two things", '[sites."a.test"]\nhost = "b"\napp = "m:a"\nstatic = "d"\n', "one of app"),
    ("nothing", '[sites."a.test"]\nhost = "b"\n', "one of app"),
    ("not a domain", '[sites."a b"]\nhost = "b"\napp = "m:a"\n', "is not a domain name"),
    ("bad app", '[sites."a.test"]\nhost = "b"\napp = "nocolon"\n', "module:attribute"),
    ("bad url", '[sites."a.test"]\nhost = "b"\nredirect = "ftp://x"\n', "http:// or https://"),
    ("unknown key", '[sites."a.test"]\nhost = "b"\nap = "m:a"\n', "unknown field"),
]


@pytest.mark.parametrize(("what", "site", "words"), SITES, ids=[s[0] for s in SITES])
def test_bad_sites_are_named(what: str, site: str, words: str) -> None:
    with pytest.raises(TopologyError) as info:
        loads(WEB + site, source="sites.toml")
    assert words in str(info.value) and "sites.a" in str(info.value), str(info.value)


def test_sites_and_address_selection_load(tmp_path: Path) -> None:
    text = 'address_selection = "ipv6-first"\n' + WEB
    text += '[sites."A.test"]\nhost = "b"\nstatic = "files"\n'
    (tmp_path / "t.toml").write_text(text)
    topo = load(str(tmp_path / "t.toml"))
    assert topo.address_selection == "ipv6-first"
    (site,) = topo.sites
    assert (site.name, site.host, site.static) == ("A.test", "b", str(tmp_path / "files"))
    with pytest.raises(TopologyError, match="address_selection: 'ipv5' is not one of"):
        loads('address_selection = "ipv5"\n' + GOOD)


def test_a_deleted_working_directory_matters_only_to_a_relative_static(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert load("book").name == "book"
    absolute = loads(WEB + f'[sites."a.test"]\nhost = "b"\nstatic = "{tmp_path}"\n')
    assert absolute.sites[0].static == str(tmp_path)
    with pytest.raises(TopologyError, match=r"sites.a.test.static: is relative .* no longer"):
        loads(WEB + '[sites."a.test"]\nhost = "b"\nstatic = "files"\n')


def test_a_lan_larger_than_its_switch_takes_is_refused() -> None:
    check(star(1024))  # more than one bridge takes: several bridges
    with pytest.raises(TopologyError, match="at most 24,000 hosts"):
        check(star(24_001))


def test_a_file_without_end_or_too_large_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="not a regular file"):
        load("/dev/zero")
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as f:
        f.truncate(5 << 20)  # sparse: nothing written
    with pytest.raises(TopologyError, match="larger than 4 MiB"):
        load(str(huge))


def test_missing_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read the file"):
        load(str(tmp_path / "nope.toml"))


def test_docs_example_is_the_book(tmp_path: Path) -> None:
    """docs/topology.md's full example must stay loadable and equal to the book."""
    doc = (Path(__file__).parent.parent / "docs" / "topology.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    assert loads(example, source="docs") == load("book")


USERS = [
    ("not a user name", '[users.Brandon]\npassword = "x"\n', "is not a user name"),
    ("the machine's", '[users.root]\npassword = "x"\n', "the machine's own account"),
    ("empty password", '[users.u]\npassword = ""\n', "a password is 1 to 1024"),
    ("password not text", "[users.u]\npassword = 123\n", "must be a string"),
    ("control character", '[users.u]\npassword = "a\\nb"\n', "printable"),
    ("not a key", '[users.u]\nkeys = ["hunter2"]\n', "not an OpenSSH public key"),
    ("INBOX again", '[users.u]\nmailboxes = ["inbox"]\n', "is there already"),
    ("a folder twice", '[users.u]\nmailboxes = ["A", "a"]\n', "is there already"),
    ("a path", '[users.u]\nmailboxes = ["../x"]\n', "is not a folder name"),
    ("unknown key", '[users.u]\npasswd = "x"\n', "unknown field"),
]


@pytest.mark.parametrize(("what", "user", "words"), USERS, ids=[u[0] for u in USERS])
def test_bad_users_are_named(what: str, user: str, words: str) -> None:
    with pytest.raises(TopologyError) as info:
        loads(GOOD + user, source="users.toml")
    assert words in str(info.value) and "users." in str(info.value), str(info.value)


def test_users_load_and_never_show_their_password() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLE brandon@laptop"
    text = GOOD + f'[users.alice]\npassword = "s3cret!"\nkeys = ["{key}"]\nmailboxes = ["Sent"]\n'
    topo = loads(text)
    alice = topo.user("alice")
    assert (alice.password, alice.keys, alice.mailboxes) == ("s3cret!", (key,), ("Sent",))
    assert "s3cret" not in repr(topo)
    brandon = load("book").user("brandon")
    assert brandon.password == "abc123"  # the book's demo password
