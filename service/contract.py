"""The OpenAPI document tells the truth about every route, including routers added later.

FastAPI documents what a route declares; this module adds what the service does around the
routes, from facts it reads off each route and the auth policy in force:

- every error is `{"detail": "..."}` (schemas.ErrorOut; service.errors makes it so), also the
  422 of request validation that FastAPI would document as its HTTPValidationError list;
- the status codes a route can answer without declaring them: 400/413 (a body that cannot be
  read or is too large), 422 (parameters or a body), 404 (ids in the path), 401/403 (a key is
  needed), 503 (busy: uploads at the server's budget, the catalogue locked by another process),
  500 (a logged internal error);
- security as enforced: a bearer key is required exactly where a caller without one has too low
  a role (`deps.anonymous_actor` against the route's `deps.require_role`), optional where a key
  only raises what a caller sees, and absent in laptop mode, where the server ignores keys.

The document is regenerated when the auth policy changes (a first key added), never per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from service.deps import Role, anonymous_actor, authenticate
from service.schemas import ErrorOut

#: The role of a caller without a key when the policy lets no such caller in at all.
NOBODY = 0
SCHEME = "HTTPBearer"  # the name FastAPI gives `deps._bearer` in components.securitySchemes
ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
#: FastAPI's validation-error schemas, replaced by ErrorOut.
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


class RouteFacts:
    """What the document needs to know about one route beyond what it declares."""

    def __init__(self, route: Any, operation: dict[str, Any]) -> None:
        calls = [dep.call for dep in _walk(route.dependant)]
        roles = [role for call in calls if (role := getattr(call, "required_role", None)) is not None]
        self.role: Role | None = max(roles) if roles else None
        self.authenticates = authenticate in calls
        self.has_body = "requestBody" in operation
        params = operation.get("parameters", [])
        self.has_path_ids = any(p.get("in") == "path" for p in params)
        self.validates = bool(params) or self.has_body


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)


#: status -> (applies to this route?, description). Errors a later feature adds to every route
#: of a kind (e.g. a Host check) belong here, not in each router.
ErrorRule = tuple[int, Callable[[RouteFacts, int], bool], str]
_RULES: tuple[ErrorRule, ...] = (
    (400, lambda f, anon: f.has_body,
     "the body could not be read (JSON that is not UTF-8, broken multipart framing)"),
    (401, lambda f, anon: f.role is not None and anon < f.role,
     "no key, or not a valid one: send 'Authorization: Bearer <key>'"),
    (403, lambda f, anon: f.role is not None and anon < f.role and f.role > min(Role),
     "the key's role is below the one this route needs"),
    (404, lambda f, anon: f.has_path_ids, "nothing with that id"),
    (413, lambda f, anon: f.has_body, "the body is above the upload limit (REID_MAX_UPLOAD_BYTES)"),
    (422, lambda f, anon: f.validates,
     "a parameter or body field is not valid (the detail names it), or a photo cannot be used"),
    (500, lambda f, anon: True, "an internal error; the server log has the details"),
    # every route reads the catalogue, which another process may hold locked past the timeout
    (503, lambda f, anon: True, "unavailable: busy (photo uploads: other photos in flight; any route: the "
                                "catalogue locked by another process; retry after Retry-After seconds), or "
                                "the catalogue database failed (the detail says which)"),
)


_AUTH_CODES = (401, 403)


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(ERROR_REF)}}}


def _document_errors(operation: dict[str, Any], facts: RouteFacts, anonymous: int) -> None:
    responses = operation.setdefault("responses", {})
    for code, applies, description in _RULES:
        if not applies(facts, anonymous):
            if code in _AUTH_CODES:  # a route's own 401/403 is not true while no key is needed
                responses.pop(str(code), None)
        elif str(code) not in responses:
            responses[str(code)] = _error_response(description)
    for code, response in responses.items():
        if code[:1] in "45":
            # A route's own entry keeps its description; its body is the one error shape.
            content = response.get("content") or {}
            if not content or "application/json" in content:
                response["content"] = {"application/json": {"schema": dict(ERROR_REF)}}


def _document_security(operation: dict[str, Any], facts: RouteFacts, anonymous: int) -> None:
    operation.pop("security", None)
    if facts.role is not None and anonymous < facts.role:
        operation["security"] = [{SCHEME: []}]
    elif facts.authenticates and anonymous < max(Role):
        operation["security"] = [{}, {SCHEME: []}]  # a key is optional: it only raises the caller's role


def describe(app: FastAPI, document: dict[str, Any], anonymous: int) -> dict[str, Any]:
    """Complete FastAPI's `document` of `app` in place for callers without a key having `anonymous`."""
    # Route contexts: each route as included, with its router's prefix and dependencies.
    routes = {(route.path_format, method.lower()): route for route in iter_route_contexts(app.routes)
              if isinstance(route.original_route, APIRoute) and route.include_in_schema for method in route.methods}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            route = routes.get((path, method))
            if route is None:
                continue
            facts = RouteFacts(route, operation)
            _document_errors(operation, facts, anonymous)
            _document_security(operation, facts, anonymous)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
    for name in _FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)
    uses_keys = any("security" in op for item in document.get("paths", {}).values() for op in item.values())
    if not uses_keys:
        components.pop("securitySchemes", None)
    document.setdefault("info", {})["description"] = _auth_summary(anonymous, uses_keys)
    return document


def _auth_summary(anonymous: int, uses_keys: bool) -> str:
    if not uses_keys:
        mode = "**Laptop mode**: no keys exist, so no route needs one and every caller may do everything."
    else:
        without = f"has the {Role(anonymous).name} role" if anonymous else "may use no route that needs a role"
        mode = (f"**Keys in use**: send `Authorization: Bearer <key>`. A caller without one {without}; "
                "routes that need more say so (401 without a valid key, 403 when the key's role is too low).")
    return (f"{mode}\n\nEvery error answers `{{\"detail\": \"<one sentence>\"}}` (ErrorOut), request validation "
            "errors (422) included: the sentence names the field. See docs/api.md.")


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json and /docs."""
    generate = app.openapi  # FastAPI's own generator (it caches in app.openapi_schema)
    documents: dict[int, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        pipeline = getattr(app.state, "pipeline", None)  # None before the server has started
        anonymous = NOBODY if pipeline is None else anonymous_actor(app.state.settings, pipeline.catalog).role
        if anonymous not in documents:
            app.openapi_schema = None
            documents[anonymous] = describe(app, generate(), anonymous)
        app.openapi_schema = documents[anonymous]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
