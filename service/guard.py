"""Requests from the wrong place are refused before any route runs.

- Host: only the names the service is meant to be reached by (loopback names, plus
  REID_ALLOWED_HOSTS). A DNS-rebinding page points its own name at 127.0.0.1 to read a
  laptop's service; its requests carry its own name as Host and are refused here.
- Origin: a write (POST, PUT, PATCH, DELETE) sent by a browser from another site is refused.
  A cross-site HTML form needs no CORS preflight, so without this any page the operator
  visits could enroll photos into a laptop-mode service. Scripts send no Origin and pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _split_host(value: str) -> tuple[str, str]:
    """'Example.org:8000' -> ('example.org', '8000'); '[::1]:80' -> ('[::1]', '80')."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return (value[:end + 1], value[end + 2:]) if end > 0 else (value, "")
    host, _, port = value.partition(":") if value.count(":") == 1 else (value, "", "")
    return host, port


class HostAndOriginGuard:
    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.names = set(LOOPBACK_HOSTS)
        self.exact: set[str] = set()
        for entry in allowed_hosts:
            host, port = _split_host(entry)
            (self.exact.add(f"{host}:{port}") if port else self.names.add(host))

    def host_allowed(self, host_header: str) -> bool:
        host, port = _split_host(host_header)
        return host in self.names or f"{host}:{port}" in self.exact

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if not self.host_allowed(host):
            detail = (f"this service does not answer to the host name {host!r}; if that name is right, add it to "
                      "REID_ALLOWED_HOSTS")
            await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
            return
        if scope.get("method", "GET") not in _SAFE_METHODS and not _same_origin(headers, host):
            detail = "a write from another web site is refused (its Origin is not this service)"
            await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _same_origin(headers: dict[str, str], host: str) -> bool:
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)  # "null" (sandboxed frames, file://) has no netloc: foreign
        return bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()
    # No Origin: a script, or an old browser; browsers also say where a request came from here.
    return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
