"""One error shape for every error: `{"detail": "<one sentence for a person>"}` (schemas.ErrorOut).

FastAPI answers a request that fails validation with a list of pydantic errors and a body it
cannot parse with a vague 400; both are turned into that shape here, so a client (and the
OpenAPI document, service.contract) knows one body for every 4xx and 5xx.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException

#: How many problems one 422 names; the rest are counted (a form can fail on every field).
MAX_LISTED = 4
#: FastAPI's detail for a body it could not read (bad UTF-8 in JSON, broken multipart framing).
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"

_WHERE = {"query": "query parameter", "path": "path parameter", "header": "header", "cookie": "cookie"}


def _field(loc: Sequence[Any], form: bool) -> str:
    """'form field 'lat'', 'query parameter 'top_k'', 'body field 'sex'', 'the request body'."""
    where, *rest = [str(part) for part in loc] or ["body"]
    if where == "body":
        # a JSON decode error's location is the character offset, not a field
        rest = [] if rest and all(part.isdigit() for part in rest) else rest
        if not rest:
            return "the request body"
        return f"{'form' if form else 'body'} field {'.'.join(rest)!r}"
    return f"{_WHERE.get(where, where)} {'.'.join(rest)!r}"


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "is invalid"))
    # pydantic prefixes a validator's own ValueError text; the text is the message
    msg = msg.removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"is not valid JSON ({ctx.get('error', 'decode error')})"
    if error.get("type") == "missing":
        return "is required"
    text = msg[:1].lower() + msg[1:]
    given = error.get("input")
    if isinstance(given, str | int | float | bool):
        shown = repr(given)
        text += f", got {shown[:60] + '...' if len(shown) > 60 else shown}"
    return text


def validation_sentence(errors: Sequence[dict[str, Any]], form: bool = False) -> str:
    """FastAPI's list of validation errors as one sentence naming each field, e.g.
    "form field 'lat': input should be a valid number, unable to parse string as a number, got 'x'"."""
    parts = [f"{_field(e.get('loc', ()), form)} {_message(e)}" if e.get("type") in ("missing", "json_invalid")
             else f"{_field(e.get('loc', ()), form)}: {_message(e)}" for e in errors[:MAX_LISTED]]
    if len(errors) > MAX_LISTED:
        parts.append(f"and {len(errors) - MAX_LISTED} more problems")
    return "; ".join(parts) or "the request is not valid"


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type", "")
    form = content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))
    return JSONResponse({"detail": validation_sentence(exc.errors(), form=form)},
                        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _path_params_valid(route: Any, params: dict[str, str]) -> bool:
    """Whether the path parameters taken from the URL pass the route's own validation: a literal
    path such as /v1/reviews/archive also matches /v1/reviews/{item_id}, but 'archive' is no id."""
    dependant = getattr(route, "dependant", None) or getattr(getattr(route, "original_route", None), "dependant", None)
    if dependant is None:
        return True
    for field in dependant.path_params:
        if field.alias in params:
            _, errors = field.validate(params[field.alias], {}, loc=("path", field.alias))
            if errors:
                return False
    return True


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at `path` (Starlette's 405 names only the first route's),
    counting only routes whose path parameters are valid for it."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is None or not route_methods or not (match := regex.match(path)):
            continue
        if _path_params_valid(route, match.groupdict()):
            methods |= route_methods
    return sorted(methods)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's own handler (it keeps headers such as WWW-Authenticate), with its vague
    body-parse message replaced by what was wrong and a 405's Allow listing every method."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED and (methods := allowed_methods(request.app,
                                                                                             request.url.path)):
        exc = StarletteHTTPException(exc.status_code, headers={**(exc.headers or {}), "Allow": ", ".join(methods)},
                                     detail=f"{request.method} is not allowed here; allowed: {', '.join(methods)}")
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == _FASTAPI_PARSE_ERROR:
        content_type = request.headers.get("content-type", "").split(";")[0].strip() or "no Content-Type"
        cause = exc.__cause__
        reason = f": {type(cause).__name__}" if cause is not None else ""
        exc = StarletteHTTPException(
            exc.status_code, headers=exc.headers,
            detail=f"the request body could not be read as {content_type}{reason} (send UTF-8 JSON or "
                   "multipart/form-data as the route's documentation says)")
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Register the handlers that give every framework error the one shape."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
