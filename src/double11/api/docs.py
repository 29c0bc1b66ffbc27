"""GET /docs: Swagger UI over /openapi.json, served from the swagger-ui-bundle-v2 package.

Its assets are served by the app itself, so the page works with no network.
swagger-ui-bundle-v2 is used rather than swagger-ui-bundle because the latter
ships Swagger UI 4, which cannot render OpenAPI 3.1; both install the module
`swagger_ui_bundle`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>double11 API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""


def assets_directory() -> Path:
    """The folder of Swagger UI's files inside the installed package."""
    vendor = Path(str(resources.files("swagger_ui_bundle").joinpath("vendor")))
    found = sorted(vendor.glob("swagger-ui-*"))
    if not found:
        raise RuntimeError(f"no Swagger UI assets under {vendor}")
    return found[-1]


def assets_app() -> StaticFiles:
    """Serves Swagger UI's JavaScript and CSS."""
    return StaticFiles(directory=assets_directory())


async def docs_page(request: Request) -> HTMLResponse:
    """The Swagger UI page, with URLs under the app's root path."""
    root = request.scope.get("root_path", "")
    return HTMLResponse(_PAGE.format(assets=root + ASSETS_PATH, spec=root + "/openapi.json"))
