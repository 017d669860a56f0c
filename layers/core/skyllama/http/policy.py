"""The route policy: which scope each route needs (T-01), read by auth and by metering."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PUBLIC = "public"
"""No key needed."""
AUTHENTICATED = "authenticated"
"""Any valid key, whatever its scopes."""
REGISTRY_READ = "registry-read"
"""Public with ``registry_public_read``, else ``manage``."""

GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})
ANY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Rule:
    """Requests with one of ``methods`` to a route whose template is ``path`` (or starts with
    it, when ``path`` ends in ``*``) need ``scope``."""

    methods: frozenset[str]
    path: str
    scope: str

    def applies(self, template: str, method: str) -> bool:
        if method not in self.methods:
            return False
        if self.path.endswith("*"):
            return template.startswith(self.path[:-1])
        return template == self.path


POLICY: tuple[Rule, ...] = (
    Rule(GET, "/", PUBLIC),
    Rule(GET, "/api/version", PUBLIC),
    Rule(POST, "/api/generate", "inference"),
    Rule(POST, "/api/chat", "inference"),
    Rule(POST, "/api/embed", "inference"),
    Rule(POST, "/api/embeddings", "inference"),
    Rule(GET, "/api/ps", "inference"),
    Rule(GET, "/api/tags", "inference"),
    Rule(POST, "/api/show", "inference"),
    Rule(POST, "/v1/chat/completions", "inference"),
    Rule(POST, "/v1/completions", "inference"),
    Rule(POST, "/v1/embeddings", "inference"),
    Rule(POST, "/v1/responses", "inference"),
    Rule(POST, "/v1/messages", "inference"),
    Rule(POST, "/v1/messages/count_tokens", "inference"),
    Rule(GET, "/v1/models", "inference"),
    Rule(GET, "/v1/models/*", "inference"),
    Rule(POST, "/api/create", "manage"),
    Rule(POST, "/api/copy", "manage"),
    Rule(frozenset({"DELETE"}), "/api/delete", "manage"),
    Rule(POST, "/api/pull", "manage"),
    Rule(POST, "/api/push", "manage"),
    Rule(frozenset({"HEAD", "POST"}), "/api/blobs/*", "manage"),
    Rule(GET, "/v2*", REGISTRY_READ),
    Rule(ANY, "/v2*", "manage"),
    Rule(GET, "/api/usage", AUTHENTICATED),
    Rule(frozenset({"DELETE"}), "/api/requests/*", AUTHENTICATED),  # owner-only: checked by the route
    Rule(GET, "/metrics", "admin"),
    Rule(GET, "/docs", AUTHENTICATED),
    Rule(GET, "/docs/oauth2-redirect", AUTHENTICATED),
    Rule(GET, "/openapi.json", AUTHENTICATED),
    Rule(GET, "/api/keys", "admin"),
    Rule(POST, "/api/keys", "admin"),
    Rule(frozenset({"DELETE"}), "/api/keys/*", "admin"),
    # The web console (http/ui.py): static files and its config hold no data; every API call the
    # console makes carries the key and meets the rules above.
    Rule(GET, "/ui", PUBLIC),
    Rule(GET, "/ui/", PUBLIC),
    Rule(GET, "/ui/config.json", PUBLIC),
    Rule(GET, "/ui/{asset:path}", PUBLIC),
)


def required_scope(template: str, method: str, *, registry_public_read: bool = False,
                   policy: Iterable[Rule] = POLICY) -> str:
    """The scope a request to the route ``template`` with ``method`` needs; ``admin`` if no rule."""
    for rule in policy:
        if rule.applies(template, method):
            if rule.scope == REGISTRY_READ:
                return PUBLIC if registry_public_read else "manage"
            return rule.scope
    return "admin"
