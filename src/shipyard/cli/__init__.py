"""The `shipyard` command line (DESIGN.md section 3, interfaces).

Each command is a thin call into a capability's service; rendering lives in `_output`, and
`app.main()` is the one place that turns exceptions into messages and exit codes.
"""

from shipyard.cli.app import app, main

__all__ = ["app", "main"]
