"""Webhooks: where alerts are posted, checked so a webhook cannot be turned against the network.

A webhook URL comes from the project spec, so whoever can edit `shipyard.yaml` chooses where the
server sends requests from inside its network (server-side request forgery). `check_webhook_url`
therefore allows only http(s) URLs without credentials whose host resolves to public addresses:
loopback, private, link-local (169.254.169.254 is the cloud metadata service), multicast,
reserved and unspecified addresses are refused unless `monitor.allow_private_webhooks: true`.

`post_json` re-resolves and re-checks the host on every attempt and connects to the address it
checked (the URL's host is replaced by that address; the Host header and the TLS server name,
against which the certificate is verified, stay the name), so DNS rebinding between the check
and the connection cannot reach a private address. Redirects are never followed, and proxies
from the environment are ignored (a proxy would connect on our behalf, unchecked).

    >>> check_webhook_url("https://hooks.example.com/alerts")
    'https://hooks.example.com/alerts'
    >>> post_json("https://hooks.example.com/alerts", {"text": "drift"}, timeout=5, retries=3,
    ...           allow_private=False)
    {'url': 'https://hooks.example.com/…', 'ok': True, 'status': 200, 'attempts': 1, ...}
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from shipyard.core.errors import Invalid, Unavailable

SCHEMES = ("http", "https")
MAX_BACKOFF = 30.0
FIX = (
    "use a public http(s) URL, or, for a receiver inside your network, set "
    "`monitor.allow_private_webhooks: true` in shipyard.yaml"
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str
    addresses: tuple[str, ...]


def check_webhook_url(url: str, *, allow_private: bool = False) -> str:
    """``url`` if alerts may be posted to it; Invalid naming the URL, the reason and the fix.

    >>> check_webhook_url("http://169.254.169.254/latest/meta-data")
    Invalid: webhook http://169.254.169.254/latest/meta-data is refused: its host resolves
    to 169.254.169.254, a link-local address (the cloud metadata service) ...
    """
    return str(_resolve(url, allow_private=allow_private).url)


def redact_url(url: str) -> str:
    """A URL safe to store and show: scheme, host and port; path and query hidden.

    Webhook URLs often carry their secret in the path (Slack, Teams) or the query, so what is
    kept of them (alert deliveries, audit events, messages) names the receiver only, with a
    short digest to tell two URLs on the same host apart.
    """
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    try:
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port else ""
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        return f"{parsed.scheme}://{host}{port}/… ({digest})"
    except (httpx.InvalidURL, TypeError, ValueError):
        return f"(unparseable URL {digest})"


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float,
    retries: int,
    allow_private: bool,
    backoff: float = 0.5,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST ``payload`` as JSON to a checked webhook; the outcome, not an exception, on failure.

    One attempt, then up to ``retries`` more after connection errors, timeouts, 429 and 5xx
    answers, waiting ``backoff`` seconds doubled each time (or the receiver's Retry-After, up
    to 30 s). Any other answer is final: 2xx is a delivery, 3xx (redirects are not followed)
    and 4xx are failures. A URL that `check_webhook_url` refuses is not contacted at all.

    ``timeout`` bounds each phase (connect, send, wait for the answer) of one attempt.

    The outcome is plain data for the alert's `deliveries`: the redacted url, ok, status (the
    last HTTP status, or None), error (None when delivered), attempts, and at (ISO time).
    ``transport`` replaces httpx's network transport (tests).
    """
    if retries < 0 or timeout <= 0:
        raise Invalid(
            f"webhook retries={retries}, timeout={timeout}: expected retries >= 0 and a "
            "timeout above 0 seconds."
        )
    outcome: dict[str, Any] = {
        "url": redact_url(url),
        "ok": False,
        "status": None,
        "error": None,
        "attempts": 0,
        "at": datetime.now(UTC).isoformat(),
    }
    send_headers = {"content-type": "application/json", **(headers or {})}
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
    ) as client:
        for attempt in range(retries + 1):
            outcome["attempts"] = attempt + 1
            wait = backoff * 2**attempt
            try:
                target = _resolve(url, allow_private=allow_private)
            except Invalid as exc:
                outcome["error"] = exc.message
                return outcome  # refused: not retried, the answer will not change
            except Unavailable as exc:
                outcome["error"] = exc.message
            else:
                try:
                    response = _send(client, target, payload, send_headers)
                except httpx.TimeoutException as exc:
                    outcome["error"] = f"no answer within {timeout:g} s ({type(exc).__name__})"
                except httpx.TransportError as exc:
                    outcome["error"] = f"could not connect: {exc or type(exc).__name__}"
                else:
                    outcome["status"] = response.status_code
                    if response.is_success:
                        outcome["ok"], outcome["error"] = True, None
                        return outcome
                    outcome["error"] = _refusal(response)
                    if not _retryable(response.status_code):
                        return outcome
                    wait = max(wait, _retry_after(response))
            if attempt < retries:
                sleep(min(wait, MAX_BACKOFF))
    return outcome


# -- checking -----------------------------------------------------------------------------------


def _resolve(url: str, *, allow_private: bool) -> _Target:
    """Parse, check and resolve ``url``; every address it resolves to must be allowed."""
    shown = _masked(url)

    def refuse(reason: str, fix: str = FIX) -> Invalid:
        return Invalid(f"webhook {shown} is refused: {reason}; {fix}.")

    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise refuse(
            f"it is not a valid URL ({exc})", "expected e.g. https://hooks.example.com/alerts"
        ) from exc
    if parsed.scheme not in SCHEMES:
        raise refuse(
            f"the scheme {parsed.scheme or '(none)'!r} is not allowed",
            "webhooks must be http:// or https:// URLs",
        )
    if not parsed.host:
        raise refuse("it has no host", "expected e.g. https://hooks.example.com/alerts")
    if parsed.userinfo:
        raise refuse(
            "it contains credentials (user:password@)",
            "put a secret in the path or query the receiver expects, never in the user info",
        )
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS need it
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unavailable(
            f"webhook {shown}: its host {host!r} does not resolve ({exc}); check the name, "
            "or the DNS of this machine."
        ) from exc
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise Unavailable(f"webhook {shown}: its host {host!r} resolves to no address.")
    if not allow_private:
        for address in addresses:
            why = _forbidden(ipaddress.ip_address(address))
            if why:
                named = "" if address == host else f" resolves to {address}, which"
                raise refuse(f"its host {host}{named} is {why}")
    return _Target(url=parsed, host=host, addresses=addresses)


def _forbidden(ip: IPAddress) -> str | None:
    """Why an address may not receive webhooks, or None for a public one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _forbidden(ip.ipv4_mapped)
    if ip == ipaddress.IPv4Address("169.254.169.254"):
        return "the cloud metadata address (link-local), which hands out credentials"
    checks = (
        (ip.is_unspecified, "an unspecified address (this machine)"),
        (ip.is_loopback, "a loopback address (this machine)"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


def _masked(url: str) -> str:
    """``url`` for messages, with any password (or a bare user token) replaced by ***."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _secret = match.group(1).partition(":")
        return f"//{user}:***@" if colon else "//***@"

    return re.sub(r"//([^/@?#]*)@", hide, url.strip(), count=1)


# -- sending ------------------------------------------------------------------------------------


def _send(
    client: httpx.Client, target: _Target, payload: Mapping[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """POST to the checked addresses in turn until one accepts the connection.

    httpx would resolve the URL's host again when it connects; were it the name, a DNS answer
    that changed since the check (rebinding) would decide where the request goes. So the URL's
    host becomes a checked address, while the Host header and the TLS server name (`sni_hostname`,
    against which the certificate is verified) stay the name.
    """
    error: httpx.TransportError | None = None
    for address in target.addresses:
        url, extensions = target.url, {}
        if address != target.host:
            url = target.url.copy_with(host=address)
            extensions = {"sni_hostname": target.host}
        try:
            return client.post(
                url,
                json=dict(payload),
                headers={**headers, "host": target.url.netloc.decode("ascii")},
                extensions=extensions,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error = exc  # this address is down; the name may have others
    assert error is not None
    raise error


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: not worth parsing for a bounded wait
        return 0.0


def _refusal(response: httpx.Response) -> str:
    if response.is_redirect:
        where = redact_url(response.headers.get("location", ""))
        return f"HTTP {response.status_code} redirect to {where} (redirects are not followed)"
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
