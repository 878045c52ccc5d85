"""The REST API: every control-plane action over HTTP, under /api/v1 (DESIGN.md section 3).

An interface, like the CLI: each operation parses its wire schema (`api.schemas`), calls the
capability's service function (the same one the CLI calls) and answers a wire schema. `app`
composes it with the serving app into the one server `shipyard serve` runs.

    >>> from shipyard.api import create_app
    >>> app = create_app(settings)
"""

from shipyard.api.app import create_app

__all__ = ["create_app"]
