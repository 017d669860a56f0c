"""Authorization is an argument (issue 18): every service entry point that reads or changes a model
demands the caller. Found from the code itself, so a new service that forgets it fails here: each
public function or method in ``skyllama/services`` whose body reads models (a manifest store's
``get``/``list``, the catalogue's lookups, the registry's finders) must take a ``caller`` parameter
without a default, or a command whose dataclass has a required ``caller``."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import skyllama.services.inference.commands as commands
from skyllama.services.access.ownership import Caller

SERVICES = Path(__file__).resolve().parents[2] / "layers/core/skyllama/services"

READS = {("manifests", "get"), ("manifests", "list"), ("catalog", "get"), ("catalog", "show"),
         ("catalog", "list_models"), ("catalog", "copy"), ("catalog", "delete"), ("registry", "find_manifest"),
         ("self", "find_manifest"), ("self", "blob_readable"), ("self", "_prepare"), ("self", "get"), ("ownership", "can_read"),
         ("ownership", "check_read"), ("ownership", "check_write"), ("ownership", "check_push"),
         ("ownership", "blob_visible"), ("creator", "plan"), ("", "plan_create"), ("", "prepare")}
COMMANDS = {"Generate", "Chat", "Embed", "LegacyEmbed"}

# Entry points that read models for the operator or for the system, not for a request.
EXEMPT = {
    "models/catalog.py:Catalog.prune": "garbage of a delete the caller was allowed: internal",
    "models/catalog.py:Catalog.gguf_info": "reads a blob header by digest, for a model already found",
    "models/gc.py:referenced_blobs": "operator's garbage collection",
    "models/gc.py:collect_garbage": "operator's garbage collection",
    "access/ownership.py:Ownership.owner_record": "the rule's own record lookup",
    "inference/service.py:Inference.load": "preload and fleet warm-ups: the operator's, not a request's",
    "inference/service.py:Inference.preload": "SKYLLAMA_PRELOAD: the operator's",
    "fleet/warm_up.py:warm_up": "the warmer's invocation: the operator's",
}


def _reads_models(node: ast.AST) -> bool:
    """Whether ``node`` uses a model-reading operation (called, or handed to a thread)."""
    for item in ast.walk(node):
        if isinstance(item, ast.Attribute):
            owner = item.value
            name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
            if (name, item.attr) in READS:
                return True
        if isinstance(item, ast.Name) and ("", item.id) in READS:
            return True
    return False


def _entry_points() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        tree = ast.parse(path.read_text())
        rel = path.relative_to(SERVICES).as_posix()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
                found.append((f"{rel}:{node.name}", node))
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and not item.name.startswith("_"):
                        found.append((f"{rel}:{node.name}.{item.name}", item))
    return found


def _demands_a_caller(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = node.args
    positional = args.posonlyargs + args.args
    required = positional[: len(positional) - len(args.defaults)]
    required += [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    if any(a.arg == "caller" for a in required):
        return True
    return any(isinstance(a.annotation, ast.Name) and a.annotation.id in COMMANDS for a in required)


def test_every_model_reading_entry_point_demands_a_caller() -> None:
    readers = [(where, node) for where, node in _entry_points() if _reads_models(node)]
    assert len(readers) >= 15  # the walk finds the catalogue, create, registry, pull, push, jobs...
    missing = [where for where, node in readers if where not in EXEMPT and not _demands_a_caller(node)]
    assert missing == []


def test_commands_demand_a_caller() -> None:
    for name in COMMANDS:
        cls = getattr(commands, name)
        caller = {f.name: f for f in dataclasses.fields(cls)}["caller"]
        assert caller.default is dataclasses.MISSING and caller.default_factory is dataclasses.MISSING
        with __import__("pytest").raises(TypeError):
            cls(model="m")  # no caller: refused when the command is built


def test_no_service_reads_the_caller_from_ambient_state() -> None:
    """No ContextVar (the old ``ownership.bind``) anywhere in the services."""
    for path in SERVICES.rglob("*.py"):
        assert "ContextVar" not in path.read_text(), path


def test_the_exemptions_are_real() -> None:
    where = {w for w, _ in _entry_points()}
    assert set(EXEMPT) <= where
    assert inspect.signature(Caller.__args__[0]) is not None  # Principal
