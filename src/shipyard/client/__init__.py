"""The Python client of a Shipyard server's REST API (`shipyard.Client`).

An interface, like the CLI: it speaks HTTP to `shipyard serve` and imports nothing of the
server side (only `core`), so `import shipyard.client` needs no database and no model library.

    >>> from shipyard.client import Client
    >>> client = Client("http://127.0.0.1:8000", token="shp_...")
"""

from shipyard.client.client import Client
from shipyard.client.pages import Page, Pages

__all__ = ["Client", "Page", "Pages"]
