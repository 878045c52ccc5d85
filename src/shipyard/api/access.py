"""Who may call what: the role table of the REST API.

    role        reads (viewer)   data, runs, models   endpoints, routing   tokens   predict
    viewer      yes              -                    -                    -        -
    scientist   yes              yes                  -                    -        -
    deployer    yes              -                    yes                  -        yes
    admin       yes              yes                  yes                  yes      yes
    predictor   -                -                    -                    -        yes

A route names one of the `Access` values below; `security.require_role` decides (so admin
passes everywhere and predictor only where `serve` lets it: predict and feedback).
"""

from __future__ import annotations

from shipyard.core.records import Role
from shipyard.serve.auth import Access

READ = Access((Role.viewer,), "reading the control plane")
SCIENCE = Access((Role.scientist,), "changing data, runs and models")
DEPLOY = Access((Role.deployer,), "changing endpoints and their routing")
ADMIN = Access((Role.admin,), "managing tokens")

__all__ = ["ADMIN", "DEPLOY", "READ", "SCIENCE"]
