"""Shipyard's one exception tree.

    ShipyardError                    500 / exit 1   something went wrong inside Shipyard
     ├── Invalid                     422 / exit 2   the input is wrong: a value, a file, a spec key
     │    ├── SpecError              422 / exit 2   shipyard.yaml does not parse or validate
     │    ├── ValidationFailed       422 / exit 6   data broke its contract (carries the report)
     │    │    └── GateFailed        422 / exit 6   a trained model failed its gates (registered
     │    │                                         as rejected; carries the failed gates)
     │    └── TooLarge               413 / exit 2   a request or file is over its size limit
     ├── NotFound                    404 / exit 3   a name, version, run or file does not exist
     │    └── NotInitialised         404 / exit 3   no workspace at SHIPYARD_HOME
     ├── Conflict                    409 / exit 4   the action clashes with what is stored
     ├── Unauthorized                401 / exit 5   no credentials, or unknown/revoked ones
     ├── Forbidden                   403 / exit 5   the credentials lack the role
     ├── NotSupported                501 / exit 2   a feature that exists but is not available here
     ├── Integrity                   500 / exit 7   stored bytes or records fail their check
     ├── Unavailable                 503 / exit 8   a service (database, URL) cannot be reached
     │    └── RateLimited            429 / exit 8   too many requests; `details["retry_after"]` s
     └── StorageFull                 507 / exit 9   the disk (or quota) under a store is full

HTTP status and CLI exit code are class attributes, read in exactly one place each (the REST
error handler and the CLI's error handler). Every message says what was received, what was
expected and what to do next.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for JSON output (CLI `--json` and the REST API)."""
        return {"error": type(self).__name__, "message": self.message, "details": self.details}


class Invalid(ShipyardError):
    http_status = 422
    exit_code = 2


class SpecError(Invalid):
    pass


class ValidationFailed(Invalid):
    """Data violated blocking contract rules; `details["report"]` holds the full report."""

    exit_code = 6


class GateFailed(ValidationFailed):
    """A trained model failed its gates: it is registered `rejected`; `details` name the gates."""


class TooLarge(Invalid):
    http_status = 413


class NotFound(ShipyardError):
    http_status = 404
    exit_code = 3


class NotInitialised(NotFound):
    pass


class Conflict(ShipyardError):
    http_status = 409
    exit_code = 4


class Unauthorized(ShipyardError):
    http_status = 401
    exit_code = 5


class Forbidden(ShipyardError):
    http_status = 403
    exit_code = 5


class NotSupported(ShipyardError):
    http_status = 501
    exit_code = 2


class Integrity(ShipyardError):
    exit_code = 7


class Unavailable(ShipyardError):
    http_status = 503
    exit_code = 8


class RateLimited(Unavailable):
    """Over a rate limit; `details["retry_after"]` says after how many seconds to retry."""

    http_status = 429


class StorageFull(ShipyardError):
    """The disk or quota under the metadata database or the artifact store is full.

    Not an `Unavailable`: retrying does not help until someone frees space.
    """

    http_status = 507
    exit_code = 9


__all__ = [
    "Conflict",
    "Forbidden",
    "GateFailed",
    "Integrity",
    "Invalid",
    "NotFound",
    "NotInitialised",
    "NotSupported",
    "RateLimited",
    "ShipyardError",
    "SpecError",
    "StorageFull",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
]
