"""Whether a TCP port listens in this process's network namespace, asked of the kernel.

A health check runs in its host's network namespace.  Where a connection
would do harm (inetd starts its command for every connection) or is not yet
worth making (a forked SSH key exchange that could only be refused), it
asks the kernel instead, as ``ss -ltn`` does: one sock_diag dump
(NETLINK_SOCK_DIAG, ``SOCK_DIAG_BY_FAMILY``) of the namespace's listening
TCP sockets of one family, a few tens of microseconds.  (``/proc/net/tcp``
says the same, but reading it walks the whole machine's table of
connections: about 5 ms each time here; and pyroute2's DiagSocket, which
sends the same request, takes some 200 ms to import in each runner.)
"""

from __future__ import annotations

import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10  # the kernel's TCP state
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
#: inet_diag_req_v2: family, protocol, extensions, padding, states; then a zeroed
#: inet_diag_sockid (48 bytes), which a dump does not filter on
REQUEST = struct.Struct("=BBBBI48x")
SPORT = struct.Struct("!H")  # in inet_diag_msg, after family, state, timer and retransmits
SPORT_AT = HEADER.size + 4


def listening(family: socket.AddressFamily, port: int) -> bool:
    """Whether a TCP socket of ``family`` (AF_INET or AF_INET6) listens on ``port``,
    at any address, in this process's network namespace."""
    request = REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    header = HEADER.pack(
        HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
        sock.send(header + request)
        while data := sock.recv(65536):
            offset = 0
            while offset + HEADER.size <= len(data):
                length, kind, _flags, _sequence, _pid = HEADER.unpack_from(data, offset)
                if kind == NLMSG_DONE:
                    return False
                if kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", data, offset + HEADER.size)
                    raise OSError(-error, "the kernel refused the sock_diag request")
                if SPORT.unpack_from(data, offset + SPORT_AT)[0] == port:
                    return True
                offset += (length + 3) & ~3  # NLMSG_ALIGN
    return False
