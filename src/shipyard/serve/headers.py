"""Request headers read straight from the ASGI scope, for the prediction routes.

`request.headers.get()` builds a Starlette `Headers` object per request and finds a missing
header by raising and catching KeyError; the prediction routes read three headers per request
(the token, the body's length, the sticky routing key, usually missing). ASGI servers give
header names in lower case.

    >>> header(request, b"authorization")
    'Bearer shp_...'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request


def header(request: Request, name: bytes) -> str | None:
    """The first value of header `name` (lower case), or None: what `request.headers.get()`
    returns."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
