"""www.example.com in the book playground: HTTP and HTTPS, httpbin, the site, the geocoder.

Every request comes from h1, through NAT, with real clients (curl,
openssl, requests) and verification on; the robustness cases speak raw
HTTP from h1 to granian.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable

from netplay import Playground, Spawned
from netplay.www._asgi import MAX_BODY_BYTES
from netplay.www._geocode import lookup

Spawn = Callable[..., Spawned]


def curl(book: Playground, *args: str) -> subprocess.CompletedProcess[str]:
    return book.host("h1").run(["curl", "-sS", "--max-time", "20", *args], timeout=30)


def python(book: Playground, source: str, *args: str) -> str:
    result = book.host("h1").run([sys.executable, "-c", textwrap.dedent(source), *args], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_http_and_https_with_curl_no_k(book: Playground) -> None:
    for url in ("http://www.example.com/get", "https://www.example.com/get", "https://www/get"):
        result = curl(book, url)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["url"] == url
    # through NAT over IPv4 the server sees modemA; over IPv6 (no NAT), h1 itself
    assert json.loads(curl(book, "-4", "https://www.example.com/ip").stdout)["origin"] == (
        "10.25.1.65"
    )
    assert json.loads(curl(book, "-6", "https://www.example.com/ip").stdout)["origin"] == (
        "fd6e:7000:25:a::11"
    )


def test_openssl_s_client_and_tls_versions(book: Playground) -> None:
    argv = ["openssl", "s_client", "-connect", "www.example.com:443", "-verify_return_error"]
    good = book.host("h1").run([*argv, "-verify_hostname", "www.example.com"], input="")
    assert good.returncode == 0 and "Verification: OK" in good.stdout, good.stderr
    assert book.host("h1").run([*argv, "-tls1_2"], input="").returncode == 0
    old = book.host("h1").run([*argv, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], input="")
    assert old.returncode != 0


def test_requests_with_verification_and_httpbin_behaviour(book: Playground) -> None:
    out = python(
        book,
        """
        import json, requests
        base = "https://www.example.com"
        s = requests.Session()
        r = s.get(base + "/redirect/3")
        checks = {"redirects": len(r.history), "final": r.url}
        s.get(base + "/cookies/set", params={"flavour": "oatmeal"})
        checks["cookies"] = s.get(base + "/cookies").json()["cookies"]
        checks["auth_ok"] = s.get(base + "/basic-auth/brandon/abc123",
                                  auth=("brandon", "abc123")).status_code
        checks["auth_bad"] = s.get(base + "/basic-auth/brandon/abc123",
                                   auth=("brandon", "wrong")).status_code
        checks["bearer"] = s.get(base + "/bearer",
                                 headers={"Authorization": "Bearer t0ken"}).json()
        checks["no_bearer"] = s.get(base + "/bearer").status_code
        checks["gzipped"] = s.get(base + "/gzip").json()["gzipped"]
        etag = s.get(base + "/etag/abc")
        checks["etag"] = etag.headers["ETag"]
        checks["etag_304"] = s.get(base + "/etag/abc",
                                   headers={"If-None-Match": etag.headers["ETag"]}).status_code
        checks["cache_304"] = s.get(base + "/cache",
                                    headers={"If-Modified-Since": "x"}).status_code
        checks["teapot"] = s.get(base + "/status/418").status_code
        checks["bytes"] = len(s.get(base + "/bytes/1000").content)
        checks["stream"] = len(s.get(base + "/stream/5").text.splitlines())
        checks["delay"] = s.get(base + "/delay/1").status_code
        checks["set_header"] = s.get(base + "/response-headers",
                                     params={"X-Demo": "yes"}).headers["X-Demo"]
        checks["ua"] = s.get(base + "/user-agent",
                             headers={"User-Agent": "netplay-test"}).json()
        checks["post"] = s.post(base + "/post", data={"a": "1"}).json()["form"]
        print(json.dumps(checks))
        """,
    )
    got = json.loads(out)
    assert got["redirects"] == 3 and got["final"] == "https://www.example.com/get"
    assert got["cookies"] == {"flavour": "oatmeal"}
    assert (got["auth_ok"], got["auth_bad"]) == (200, 401)
    assert got["bearer"] == {"authenticated": True, "token": "t0ken"}
    assert got["no_bearer"] == 401
    assert got["gzipped"] is True
    assert (got["etag"], got["etag_304"], got["cache_304"]) == ("abc", 304, 304)
    assert (got["teapot"], got["bytes"], got["stream"], got["delay"]) == (418, 1000, 5, 200)
    assert got["set_header"] == "yes"
    assert got["ua"] == {"user-agent": "netplay-test"}
    assert got["post"] == {"a": "1"}


def test_site_pages_are_gzipped_cached_and_revalidated(book: Playground) -> None:
    head = curl(book, "--compressed", "-D", "-", "-o", "/dev/null", "https://www/about.html")
    headers = head.stdout.lower()
    assert "content-encoding: gzip" in headers and "vary: accept-encoding" in headers
    etag = next(
        line.split(":", 1)[1].strip()
        for line in head.stdout.splitlines()
        if line.lower().startswith("etag:")
    )
    again = curl(
        book,
        "-H",
        f"If-None-Match: {etag}",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        "https://www/about.html",
    )
    assert again.stdout == "304"
    plain = curl(book, "https://www/about.html")  # no Accept-Encoding: the text itself
    assert plain.stdout.startswith("<!DOCTYPE html>")


def test_headers_echoed(book: Playground) -> None:
    sent = json.loads(curl(book, "-H", "X-Netplay: yes", "https://www/headers").stdout)
    assert sent["headers"]["X-Netplay"] == "yes" and sent["headers"]["Host"] == "www"


def test_keep_alive_and_chunked_responses(book: Playground) -> None:
    both = curl(book, "-v", "-o", "/dev/null", "-o", "/dev/null", *["http://www/get"] * 2)
    assert "Re-using existing connection" in both.stderr or "Reusing" in both.stderr
    chunked = curl(book, "--http1.1", "-D", "-", "-o", "/dev/null", "https://www/stream/3")
    assert "transfer-encoding: chunked" in chunked.stdout.lower()


def test_the_site_crawled_every_link_resolves(book: Playground) -> None:
    out = python(
        book,
        """
        import json, requests, urllib.robotparser
        from html.parser import HTMLParser
        from urllib.parse import urljoin, urlsplit

        class Links(HTMLParser):
            def __init__(self):
                super().__init__()
                self.found = []
            def handle_starttag(self, tag, attrs):
                for name, value in attrs:
                    if name in ("href", "src") and value:
                        self.found.append(value)

        robots = urllib.robotparser.RobotFileParser("https://www.example.com/robots.txt")
        robots.read()
        todo, seen, broken = ["https://www.example.com/"], set(), []
        while todo:
            url = todo.pop()
            if url in seen or not robots.can_fetch("*", url):
                continue
            seen.add(url)
            r = requests.get(url)
            if r.status_code != 200:
                broken.append((url, r.status_code))
                continue
            if r.headers["Content-Type"].startswith("text/html"):
                parser = Links()
                parser.feed(r.text)
                for link in parser.found:
                    target = urljoin(url, link).split("#")[0]
                    parts = urlsplit(target)
                    if parts.hostname == "www.example.com" and parts.path.endswith(
                        (".html", "/", ".png", ".js")
                    ):
                        todo.append(target.replace("http://", "https://"))
        print(json.dumps({"seen": sorted(seen), "broken": broken}))
        """,
    )
    crawl = json.loads(out)
    assert crawl["broken"] == []
    pages = [u for u in crawl["seen"] if u.endswith(".html")]
    assert len(pages) >= 12, pages
    assert not any("/private/" in u for u in crawl["seen"])
    assert any(u.endswith(".png") for u in crawl["seen"])


def test_search_robots_and_non_ascii(book: Playground) -> None:
    found = curl(book, "https://www.example.com/search?q=ipv6")
    assert '<p id="count">' in found.stdout and "Widgets learn IPv6" in found.stdout
    none = curl(book, "https://www.example.com/search?q=zeppelin")
    assert "0 pages found" in none.stdout
    robots = curl(book, "https://www.example.com/robots.txt").stdout
    assert "Disallow: /private/" in robots
    about = curl(book, "https://www.example.com/about.html").stdout
    assert "こんにちは" in about and "Καλημέρα" in about
    dynamic = curl(book, "https://www.example.com/dynamic.html").stdout
    assert '<ul id="stock"></ul>' in dynamic  # empty until JavaScript runs
    assert json.loads(curl(book, "https://www.example.com/stock.json").stdout)[0]["name"]


def test_geocoding_api(book: Playground) -> None:
    result = curl(
        book,
        "-G",
        "--data-urlencode",
        "q=207 N Defiance St, Archbold, OH",
        "https://www.example.com/geocode",
    )
    place = json.loads(result.stdout)
    assert place["status"] == "OK"
    location = place["results"][0]["geometry"]["location"]
    assert round(location["lat"], 2) == 41.52 and round(location["lng"], 2) == -84.31
    nothing = json.loads(curl(book, "https://www.example.com/geocode?q=atlantis").stdout)
    assert nothing == {"status": "ZERO_RESULTS", "results": []}
    missing = curl(book, "-w", "%{http_code}", "-o", "/dev/null", "https://www/geocode")
    assert missing.stdout == "400"


def test_gazetteer_lookup() -> None:
    assert lookup("königsallee")[0][0].startswith("Königsallee 1")
    assert [e[0] for e in lookup("wall st new york")] == ["11 Wall St, New York, NY 10005, USA"]
    assert lookup("") == [] and lookup("nowhere at all") == []


RAW = """
import socket, sys, time
def exchange(data, wait=8.0, whole=False):
    s = socket.create_connection(("www.example.com", 80), timeout=wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b" <timeout>"
    s.close()
    first = out.split(b"\\r\\n")[0].decode()
    return f"{first} ({out.count(b'HTTP/1.1 ')} answers)" if whole else first
"""


def test_malformed_oversized_and_smuggling_requests_are_rejected(book: Playground) -> None:
    out = python(
        book,
        RAW
        + """
print(exchange(b"GARBAGE\\r\\n\\r\\n"))
print(exchange(b"GET /get HTTP/1.1\\r\\nHost: www\\r\\nX-Big: " + b"a" * 70000 + b"\\r\\n\\r\\n"))
print(exchange(b"POST /post HTTP/1.1\\r\\nHost: www\\r\\nContent-Length: 4\\r\\n"
               b"Transfer-Encoding: chunked\\r\\n\\r\\n"
               b"0\\r\\n\\r\\nGET /admin HTTP/1.1\\r\\n\\r\\n", whole=True))
print(exchange(b"POST /post HTTP/1.1\\r\\nHost: www\\r\\nContent-Length: 4\\r\\n"
               b"Content-Length: 5\\r\\n\\r\\nabcde"))
""",
    )
    bad_line, big, cl_te, two_cl = out.splitlines()
    assert bad_line.startswith("HTTP/1.1 400")
    assert big.startswith("HTTP/1.1 431")
    # RFC 9112 6.3: the chunked framing wins and the connection is closed after the
    # answer, so what was smuggled after the body is never read as a request
    assert cl_te.endswith("(1 answers)") and cl_te.split()[1] in ("200", "400", "501")
    assert two_cl.startswith("HTTP/1.1 400")


def test_slow_headers_are_cut_off_while_others_are_served(book: Playground) -> None:
    out = python(
        book,
        RAW
        + """
import select
slow = socket.create_connection(("www.example.com", 80))
start = time.monotonic()
served = closed = None
for ch in b"GET /get HTTP/1.1\\r\\nHost: www\\r\\nX-Slow: " + b"a" * 400:
    try:
        slow.send(bytes([ch]))
    except OSError:
        closed = time.monotonic() - start
        break
    if select.select([slow], [], [], 0.25)[0]:
        closed = time.monotonic() - start  # an error response, or the end
        break
    if served is None and time.monotonic() - start > 1:
        served = exchange(b"GET /get HTTP/1.1\\r\\nHost: www\\r\\nConnection: close\\r\\n\\r\\n")
print(served)
print(closed)
""",
    )
    served, closed = out.splitlines()
    assert served.startswith("HTTP/1.1 200")
    assert closed != "None" and 4 < float(closed) < 15  # cut off after about 5 s


def test_a_thousand_idle_connections_do_not_stop_service(book: Playground) -> None:
    out = python(
        book,
        RAW
        + """
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
idle = [socket.create_connection(("www.example.com", 80)) for _ in range(1000)]
print(exchange(b"GET /get HTTP/1.1\\r\\nHost: www\\r\\nConnection: close\\r\\n\\r\\n", 10))
for s in idle:
    s.close()
""",
    )
    assert out.startswith("HTTP/1.1 200")


SLOW_BODIES = r"""
import socket, sys, time
held = []
for _ in range(int(sys.argv[1])):  # each sends one byte of a 100-byte body, then waits
    c = socket.create_connection(("10.130.1.4", 80))
    c.sendall(b"POST /post HTTP/1.1\r\nHost: www\r\nContent-Length: 100\r\n\r\nx")
    held.append(c)
print(len(held), flush=True)
sys.stdin.read()
"""


def test_slow_bodies_do_not_keep_others_out(book: Playground, spawn: Spawn) -> None:
    """More slow uploads than the application has threads: a body is read
    without a thread, so others are still served."""
    slow = spawn(book.host("h2"), [sys.executable, "-c", SLOW_BODIES, "40"])
    assert slow.first_line == "40"
    got = book.host("h1").run(["curl", "-s", "-m", "5", "http://www/get"], timeout=30)
    assert json.loads(got.stdout)["url"] == "http://www/get", got.stderr


def test_bodies_chunked_and_too_large(book: Playground) -> None:
    h1 = book.host("h1")
    chunked = ["curl", "-s", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: text/plain"]
    echoed = h1.run([*chunked, "--data-binary", "hello, chunks", "http://www/post"], timeout=30)
    assert json.loads(echoed.stdout)["data"] == "hello, chunks", echoed.stderr
    too_big = f"head -c {MAX_BODY_BYTES + 1} /dev/zero | curl -s -o /dev/null -w %{{http_code}}"
    declared = h1.run(["sh", "-c", f"{too_big} --data-binary @- http://www/post"], timeout=60)
    assert declared.stdout == "413"  # by its Content-Length, before reading it
    streamed = h1.run(["sh", "-c", f"{too_big} -H 'Transfer-Encoding: chunked' "
                       "--data-binary @- http://www/post"], timeout=60)  # fmt: skip
    assert streamed.stdout == "413"
