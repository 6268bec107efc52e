"""wsgidav domain controller over `photovfs.users`: HTTP Basic against argon2 hashes.

Digest authentication needs the password (or an MD5 of it) on the server; photovfs stores only argon2
hashes, so only Basic is offered: use HTTPS (`--cert/--key`) anywhere but on a trusted network.
The verified user's role becomes the `Actor` of every core call of the request.
"""

from __future__ import annotations

from photovfs.roles import Actor
from photovfs.users import Users
from wsgidav.dc.base_dc import BaseDomainController

REALM = "photovfs"
ANONYMOUS_ADMIN = Actor("anonymous", "admin")


class PhotoDomainController(BaseDomainController):
    """Configured as `http_authenticator.domain_controller`; reads `photovfs.users` from config."""

    def __init__(self, wsgidav_app, config):
        super().__init__(wsgidav_app, config)
        self.users: Users | None = config.get("photovfs", {}).get("users")

    def __str__(self) -> str:
        return f"PhotoDomainController({self.users.path if self.users else 'anonymous'})"

    def get_domain_realm(self, path_info, environ):
        return REALM

    def require_authentication(self, realm, environ):
        if self.users is not None and self.users:
            return True
        if environ is not None:
            # no users at all: the server only starts like this on loopback (see server.py)
            environ["photovfs.actor"] = ANONYMOUS_ADMIN
        return False

    def basic_auth_user(self, realm, user_name, password, environ):
        role = self.users.verify(user_name, password) if self.users is not None else None
        if role is None:
            return False
        environ["photovfs.actor"] = Actor(user_name, role)
        environ["wsgidav.auth.roles"] = (role,)
        return True

    def supports_http_digest_auth(self):
        return False

    def digest_auth_user(self, realm, user_name, environ):  # pragma: no cover - never offered
        return False
