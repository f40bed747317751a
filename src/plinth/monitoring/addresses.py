"""Which network addresses an alert webhook may reach: public ones, unless its rule allows private ones.

A webhook URL is written by whoever writes the rules, but it is fetched from wherever the watcher
runs, often inside a network its author cannot otherwise reach (a cloud metadata service at
169.254.169.254, an admin port on localhost, a database on 10.0.0.0/8). So every address a host
resolves to is checked before connecting, on every redirect hop, and the connection then goes to
an address that was checked, so that a second DNS answer cannot switch it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_KINDS: tuple[tuple[str, Callable[[IP], bool]], ...] = (
    ("a loopback address (this machine)", lambda ip: ip.is_loopback),
    ("a link-local address (e.g. a cloud metadata service)", lambda ip: ip.is_link_local),
    ("the unspecified address", lambda ip: ip.is_unspecified),
    ("a multicast address", lambda ip: ip.is_multicast),
    ("a reserved address", lambda ip: ip.is_reserved),
    ("a private address", lambda ip: ip.is_private),
    ("not a public address", lambda ip: not ip.is_global),
)


def refusal(address: str) -> str | None:
    """Why the IP address `address` may not be a webhook's target, or None when it is public."""
    ip: IP = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for kind, test in _KINDS:
        if test(ip):
            return f"{address} is {kind}"
    return None


def literal_refusal(host: str) -> str | None:
    """Why `host` may not be a target when that shows without resolving it: an IP, or localhost."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is this machine (loopback)"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return refusal(host)


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order.

    Raises:
        OSError: the name does not resolve.
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def connect(addresses: list[str], port: int, timeout_s: float | None) -> socket.socket:
    """A TCP connection to the first of `addresses` that answers on `port`.

    Raises:
        OSError: none answered (the last one's error).
    """
    failure: OSError = OSError(f"no address to connect to on port {port}")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout_s)
        except OSError as exc:
            failure = exc
    raise failure
