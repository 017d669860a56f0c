"""Registries: pull and push as a client, ``/v2/`` as a server, and the outbound (SSRF) policy."""
