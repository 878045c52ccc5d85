"""Authentication, roles and workspace identity (DESIGN.md section 3, security/)."""

from shipyard.security.tokens import (
    authenticate,
    create_token,
    init_workspace,
    list_tokens,
    require_role,
    revoke_token,
)

__all__ = [
    "authenticate",
    "create_token",
    "init_workspace",
    "list_tokens",
    "require_role",
    "revoke_token",
]
