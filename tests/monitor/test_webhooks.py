"""Webhook URLs are checked against SSRF; posts time out, retry within bounds, never redirect."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
from webhook_receiver import receiver, silent_receiver

from shipyard.core.errors import Invalid
from shipyard.monitor import webhooks
from shipyard.monitor.webhooks import check_webhook_url, post_json, redact_url

FIX = r"monitor\.allow_private_webhooks: true"
PUBLIC = "93.184.216.34"


def _resolves_to(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[str]:
    """Make every name resolve to the next answer in turn (the last one repeats)."""
    asked: list[str] = []
    queue = list(answers)

    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port),
            )
            for a in addresses
        ]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake)
    return asked


# -- checking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("https://192.168.0.10/hook", "192.168.0.10 is a private address"),
        ("http://172.16.5.4/hook", "private address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[::1]:9000/hook", "::1 is a loopback address"),
        ("http://[fe80::1]/hook", "link-local address"),
        ("http://0.0.0.0/hook", "unspecified address"),
        ("http://224.0.0.1/hook", "multicast address"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback address"),
        ("http://100.64.0.1/hook", "not a public address"),
        (
            "http://localhost:8080/hook",
            "localhost resolves to (127.0.0.1|::1), which is a loopback",
        ),
        ("http://2130706433/hook", "resolves to 127.0.0.1"),  # 127.0.0.1 as one number
    ],
)
def test_private_destinations_are_refused(url: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason) as info:
        check_webhook_url(url)
    assert "is refused" in info.value.message
    assert url in info.value.message
    assert "monitor.allow_private_webhooks: true" in info.value.message


def test_the_metadata_address_is_named_clearly() -> None:
    with pytest.raises(Invalid) as info:
        check_webhook_url("http://169.254.169.254/latest/meta-data/iam/")
    message = info.value.message
    assert "169.254.169.254 is the cloud metadata address (link-local)" in message
    assert "shipyard.yaml" in message


def test_a_name_that_resolves_to_a_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolves_to(monkeypatch, [PUBLIC, "10.0.0.7"])  # one private answer among public ones
    with pytest.raises(Invalid, match=r"hooks\.example\.com resolves to 10\.0\.0\.7, which is a"):
        check_webhook_url("https://hooks.example.com/a")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "the scheme 'file' is not allowed"),
        ("ftp://example.com/hook", "the scheme 'ftp' is not allowed"),
        ("gopher://example.com/", "the scheme 'gopher' is not allowed"),
        ("example.com/hook", "the scheme '\\(none\\)' is not allowed"),
        ("http:///hook", "it has no host"),
    ],
)
def test_only_http_urls_with_a_host(url: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        check_webhook_url(url)


def test_credentials_in_the_url_are_refused_and_masked() -> None:
    with pytest.raises(Invalid, match=r"contains credentials") as info:
        check_webhook_url("https://ana:hunter2@hooks.example.com/a")
    assert "hunter2" not in info.value.message
    assert "https://ana:***@hooks.example.com/a" in info.value.message
    with pytest.raises(Invalid) as info:
        check_webhook_url("https://sekrit-token@hooks.example.com/a")
    assert "sekrit-token" not in info.value.message


def test_public_addresses_pass_and_private_ones_may_be_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert check_webhook_url("http://127.0.0.1:9/x", allow_private=True) == "http://127.0.0.1:9/x"
    assert check_webhook_url("http://localhost/x", allow_private=True) == "http://localhost/x"
    _resolves_to(monkeypatch, [PUBLIC])
    assert check_webhook_url("https://hooks.example.com/a?b=1") == "https://hooks.example.com/a?b=1"


def test_redacted_urls_keep_only_the_receiver() -> None:
    shown = redact_url("https://hooks.slack.com/services/T000/B000/SECRET?token=abc")
    assert shown.startswith("https://hooks.slack.com/… (")
    assert "SECRET" not in shown and "abc" not in shown
    assert redact_url("http://[::1]:81/x").startswith("http://[::1]:81/… (")
    assert redact_url("https://a.example/x") != redact_url("https://a.example/y")


# -- posting ------------------------------------------------------------------------------------


def test_post_delivers_json_to_a_real_receiver() -> None:
    with receiver() as hook:
        out = post_json(
            hook.url, {"text": "drift", "n": 1}, timeout=5, retries=0, allow_private=True
        )
    assert out["ok"] is True and out["status"] == 200 and out["error"] is None
    assert out["attempts"] == 1
    assert hook.received == [{"text": "drift", "n": 1}]
    assert hook.request_headers[0]["content-type"] == "application/json"
    assert out["url"].startswith("http://127.0.0.1:")
    assert "/hook" not in out["url"]


def test_a_hostname_is_pinned_to_the_address_that_was_checked() -> None:
    with receiver() as hook:
        url = hook.url.replace("127.0.0.1", "localhost")
        out = post_json(url, {"a": 1}, timeout=5, retries=0, allow_private=True)
    assert out["ok"] is True
    port = url.split(":")[2].split("/")[0]
    assert hook.request_headers[0]["host"] == f"localhost:{port}"


def test_post_retries_5xx_then_succeeds() -> None:
    with receiver(500, 503) as hook:
        out = post_json(hook.url, {"a": 1}, timeout=5, retries=3, allow_private=True, backoff=0.01)
    assert out["ok"] is True and out["status"] == 200
    assert out["attempts"] == 3
    assert len(hook.received) == 3


def test_post_gives_up_after_the_retries() -> None:
    waits: list[float] = []
    with receiver(500, 500, 500, 500) as hook:
        out = post_json(
            hook.url, {"a": 1}, timeout=5, retries=2, allow_private=True, sleep=waits.append
        )
    assert out["ok"] is False and out["status"] == 500
    assert out["error"] == "HTTP 500 Internal Server Error"
    assert out["attempts"] == 3 and len(hook.received) == 3
    assert waits == [0.5, 1.0]  # doubling backoff, none after the last attempt


def test_429_is_retried_after_retry_after_within_bounds() -> None:
    waits: list[float] = []
    with receiver(429, headers={"retry-after": "2"}) as hook:
        out = post_json(
            hook.url, {"a": 1}, timeout=5, retries=1, allow_private=True, sleep=waits.append
        )
    assert out["ok"] is True and out["attempts"] == 2
    assert waits == [2.0]
    with receiver(429, headers={"retry-after": "3600"}) as hook:
        post_json(hook.url, {"a": 1}, timeout=5, retries=1, allow_private=True, sleep=waits.append)
    assert waits[-1] == webhooks.MAX_BACKOFF


def test_4xx_is_final() -> None:
    with receiver(404) as hook:
        out = post_json(hook.url, {"a": 1}, timeout=5, retries=3, allow_private=True, backoff=0)
    assert out == {**out, "ok": False, "status": 404, "attempts": 1}
    assert out["error"] == "HTTP 404 Not Found"


def test_redirects_are_not_followed() -> None:
    # A redirect to the metadata address would otherwise bypass the check.
    location = {"location": "http://169.254.169.254/latest/meta-data/"}
    with receiver(302, headers=location) as hook:
        out = post_json(hook.url, {"a": 1}, timeout=5, retries=3, allow_private=True, backoff=0)
    assert out["ok"] is False and out["status"] == 302 and out["attempts"] == 1
    assert "redirects are not followed" in out["error"]
    assert len(hook.received) == 1


def test_a_receiver_that_never_answers_times_out() -> None:
    with silent_receiver() as url:
        started = time.monotonic()
        out = post_json(url, {"a": 1}, timeout=0.3, retries=1, allow_private=True, backoff=0.01)
        elapsed = time.monotonic() - started
    assert out["ok"] is False and out["status"] is None and out["attempts"] == 2
    assert out["error"].startswith("no answer within 0.3 s")
    assert elapsed < 3


def test_a_closed_port_is_a_connection_error() -> None:
    with silent_receiver() as url:
        pass  # closed again: nothing listens there now
    out = post_json(url, {"a": 1}, timeout=2, retries=1, allow_private=True, backoff=0)
    assert out["ok"] is False and out["attempts"] == 2
    assert out["error"].startswith("could not connect")


def test_a_refused_url_is_never_contacted() -> None:
    with receiver() as hook:
        out = post_json(hook.url, {"a": 1}, timeout=5, retries=3, allow_private=False)
    assert out["ok"] is False and out["attempts"] == 1 and out["status"] is None
    assert "127.0.0.1 is a loopback address" in out["error"]
    assert hook.received == []


def test_the_connection_goes_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    _resolves_to(monkeypatch, [PUBLIC])
    out = post_json(
        "https://hooks.example.com:8443/a?b=1",
        {"a": 1},
        timeout=5,
        retries=0,
        allow_private=False,
        transport=httpx.MockTransport(answer),
    )
    assert out["ok"] is True
    (request,) = seen
    assert request.url == httpx.URL(f"https://{PUBLIC}:8443/a?b=1")
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"  # TLS checks the name


def test_dns_rebinding_between_attempts_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name is resolved and checked on every attempt: a rebinding to loopback is refused."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(503)

    asked = _resolves_to(monkeypatch, [PUBLIC], ["127.0.0.1"])
    out = post_json(
        "https://hooks.example.com/a",
        {"a": 1},
        timeout=5,
        retries=3,
        allow_private=False,
        backoff=0,
        transport=httpx.MockTransport(answer),
    )
    assert seen == [PUBLIC]  # never to 127.0.0.1
    assert asked == ["hooks.example.com", "hooks.example.com"]
    assert out["ok"] is False and out["attempts"] == 2
    assert "resolves to 127.0.0.1, which is a loopback address" in out["error"]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(Invalid, match="retries >= 0"):
        post_json("https://example.com", {}, timeout=1, retries=-1, allow_private=False)
    with pytest.raises(Invalid, match="timeout above 0"):
        post_json("https://example.com", {}, timeout=0, retries=0, allow_private=False)


def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    with receiver() as hook:
        out = post_json(hook.url, {"a": 1}, timeout=5, retries=0, allow_private=True)
    assert out["ok"] is True


def test_a_name_that_does_not_resolve_is_retried_then_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fail)
    out = post_json(
        "https://hooks.example.com/a", {}, timeout=1, retries=2, allow_private=False, backoff=0
    )
    assert out["ok"] is False and out["attempts"] == 3
    assert "its host 'hooks.example.com' does not resolve" in out["error"]
