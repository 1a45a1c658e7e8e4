"""Where a webhook may be sent: to public addresses only, unless WEBHOOK_ALLOW_PRIVATE is set.

A budget's `webhook_url` is chosen by whoever may create budgets, and the service POSTs to it from inside its
own network: aimed at 169.254.169.254 (cloud metadata), 127.0.0.1 or 10.0.0.0/8 it would be a server-side request
forgery. The host is resolved and every address it resolves to is checked; the delivery then connects to a checked
address (`Destination.url`), so a DNS answer that changes after the check (DNS rebinding) is never used.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]  # (host, port) -> its addresses, raising OSError when it has none
DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookRefusedError(ValueError):
    """The URL may not receive webhooks; the message says why."""


@dataclass(frozen=True)
class Destination:
    """A checked webhook URL: `url` names the checked address; `host` and `host_header` keep the original host
    for the Host header and the TLS server name (certificates are verified against it)."""

    url: str
    host: str
    host_header: str


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, by the system's resolver."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class WebhookPolicy:
    """Checks webhook URLs and pins each delivery to an address that passed."""

    def __init__(self, *, allow_private: bool = False, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self.resolver = resolver

    def destination(self, url: str) -> Destination:
        """Resolve and check `url`; raises WebhookRefusedError, or OSError when its host does not resolve (now)."""
        try:
            parts = urlsplit(url)
            explicit_port = parts.port
        except ValueError as exc:
            raise WebhookRefusedError(f"{url!r} is not a valid URL: {exc}") from None
        host = parts.hostname
        if parts.scheme not in DEFAULT_PORTS or not host:
            raise WebhookRefusedError(f"{url!r} is not an http:// or https:// URL with a host")
        port = explicit_port or DEFAULT_PORTS[parts.scheme]
        addresses = _literal(host) or self.resolver(host, port)
        if not addresses:
            raise OSError(f"{host} has no address")
        if not self.allow_private:
            for address in addresses:
                reason = _refusal(address)
                if reason:
                    raise WebhookRefusedError(f"{host} resolves to {address}, {reason} (set WEBHOOK_ALLOW_PRIVATE "
                                              "to allow it)")
        userinfo, _, host_header = parts.netloc.rpartition("@")
        pinned = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
        netloc = f"{userinfo}@{pinned}:{port}" if userinfo else f"{pinned}:{port}"
        return Destination(url=parts._replace(netloc=netloc).geturl(), host=host, host_header=host_header)


def _literal(host: str) -> list[str]:
    """An IP address written as the host is its only address: no lookup."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return []


def _refusal(text: str) -> str | None:
    """Why a webhook may not go to this address, or None for a public one."""
    address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private:
        return "a private address"
    if not address.is_global or address.is_multicast:
        return "not a public unicast address"
    return None
