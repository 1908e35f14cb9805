"""/docs (Swagger UI) and /redoc (ReDoc) from files vendored in service/static: no CDN, so the
API documentation works on a field laptop with no network.

The versions are in the file names (service/static/swagger-ui-<v>.*, redoc-<v>.*, with their
licences beside them). To update: `npm pack swagger-ui-dist@X redoc@Y`, copy swagger-ui-bundle.js,
swagger-ui.css, favicon-32x32.png, LICENSE and NOTICE, and bundles/redoc.standalone.js and
LICENSE, under the new names, and change the versions here. One change to the ReDoc bundle:
its "Redocly" logo pointed at Redocly's hosted copy; it is `src:"data:,"` instead (the logo then hides
itself, as it does offline), so the page asks nothing of the network.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from service.web import static_url

SWAGGER_UI = "swagger-ui-5.35.0"
REDOC = "redoc-2.5.4"

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url, title=f"{app.title} - API",
        swagger_js_url=static_url(f"{SWAGGER_UI}.bundle.js"), swagger_css_url=static_url(f"{SWAGGER_UI}.css"),
        swagger_favicon_url=static_url(f"{SWAGGER_UI}.favicon-32x32.png"),
        # no badge from the online validator: it would call out to the internet
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    app = request.app
    return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - API reference",
                          redoc_js_url=static_url(f"{REDOC}.standalone.js"),
                          redoc_favicon_url=static_url(f"{SWAGGER_UI}.favicon-32x32.png"), with_google_fonts=False)
