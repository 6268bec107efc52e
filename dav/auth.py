"""wsgidav domain controller over `photovfs.users`: HTTP Basic against argon2 hashes.

Digest authentication needs the password (or an MD5 of it) on the server; photovfs stores only argon2
hashes, so only Basic is offered: use HTTPS (`--cert/--key`) anywhere but on a trusted network.
The verified user's role becomes the `Actor` of every core call of the request.
"""

from __future__ import annotations

import base64
import binascii

from photovfs.roles import Actor
from photovfs.users import Users
from wsgidav.dc.base_dc import BaseDomainController

REALM = "photovfs"
ANONYMOUS_ADMIN = Actor("anonymous", "admin")


class PhotoDomainController(BaseDomainController):
    """Configured as `http_authenticator.domain_controller`; reads `photovfs.users` from config."""

    def __init__(self, wsgidav_app, config):
        super().__init__(wsgidav_app, config)
        settings = config.get("photovfs", {})
        self.users: Users | None = settings.get("users")
        # decided when the server starts (see server.make_app): a server started with users never
        # turns anonymous when the last one is removed
        self.anonymous_ok: bool = settings.get("anonymous_ok", not self.users)

    def __str__(self) -> str:
        return f"PhotoDomainController({self.users.path if self.users else 'anonymous'})"

    def get_domain_realm(self, path_info, environ):
        return REALM

    def require_authentication(self, realm, environ):
        if (self.users is not None and self.users) or not self.anonymous_ok:
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


def request_actor(users: Users | None, environ: dict, anonymous_ok: bool) -> Actor | None:
    """The actor wsgidav's HTTPAuthenticator with `PhotoDomainController` lets this request through
    as, or None when it would not let it through as it stands (it then answers 401 or asks again).

    For the GET answered before wsgidav (`FileResponder.hot`): the same users, the same Basic
    credentials, the same verdict; anything unusual is None, and wsgidav decides."""
    if users is None or not users:
        return ANONYMOUS_ADMIN if anonymous_ok else None
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, sep, password = decoded.partition(":")
    if not sep:
        return None
    role = users.verify(name, password)
    return Actor(name, role) if role is not None else None
