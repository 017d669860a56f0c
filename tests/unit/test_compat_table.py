"""The compatibility table cannot drift: every served route and wire field is in it, and the
README shows exactly its rendering."""

from pathlib import Path

from skyllama.compat import FIELDS, ROUTES, render
from skyllama.composition import build_runtime
from skyllama.engine.fake import FakeEngine
from skyllama.http import inference_types, types
from skyllama.http.app import create_app
from skyllama.http.auth import flat_routes
from skyllama.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = {"/docs", "/docs/oauth2-redirect", "/openapi.json"}


def normalise(path: str) -> str:
    return path.replace(":path}", "}")


def test_every_served_route_is_in_the_table(tmp_path: Path) -> None:
    runtime = build_runtime(Settings.from_env({}, models=tmp_path), engine=FakeEngine())
    app = create_app(runtime)
    runtime.close()
    listed = {(normalise(path), method) for methods, path, _s, _n in ROUTES for method in methods.split()}
    listed |= {(p.rstrip("/") or "/", m) for p, m in listed}  # /v2 and /v2/
    for route in flat_routes(app):
        path = getattr(route, "path", "")
        if path in DOCS:
            continue
        for method in getattr(route, "methods", None) or []:
            assert (normalise(path), method) in listed or (normalise(path).rstrip("/"), method) in listed, \
                (path, method)


def test_every_request_field_is_in_the_table() -> None:
    models = {
        "/api/generate": inference_types.GenerateRequest, "/api/chat": inference_types.ChatRequest,
        "/api/embed": inference_types.EmbedRequest, "/api/embeddings": inference_types.EmbeddingsRequest,
        "/api/create": types.CreateRequest, "/api/show": types.ShowRequest, "/api/copy": types.CopyRequest,
        "/api/delete": types.DeleteRequest,
    }
    for route, model in models.items():
        documented = {name for name, _s, _n in FIELDS[route]}
        for name, field in model.model_fields.items():
            wire = field.alias or name
            if wire == "name":  # the deprecated alias of `model`, noted there
                continue
            assert wire in documented, (route, wire)


def test_readme_shows_the_current_table() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- compat:start -->\n", 1)[1].split("\n<!-- compat:end -->", 1)[0]
    assert section == render()
