"""A small OpenAPI 3.1 registry: endpoints declare their pydantic models, `/openapi.json` renders them.

Request bodies are validated with the same models, so the document and the behaviour cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from gateway import __version__
from gateway.errors import PayloadError
from gateway.payloads import storable

M = TypeVar("M", bound=BaseModel)


@dataclass
class Operation:
    """One documented endpoint."""

    method: str
    path: str
    summary: str
    body: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    auth: bool = True
    tag: str = "api"
    content_type: str = "application/json"


OPERATIONS: list[Operation] = []


def document(
    method: str,
    path: str,
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    responses: dict[int, type[BaseModel] | None] | None = None,
    query: dict[str, str] | None = None,
    auth: bool = True,
    tag: str = "api",
    content_type: str = "application/json",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator recording an endpoint in the OpenAPI document (paths use ``{name}`` placeholders)."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        OPERATIONS.append(
            Operation(
                method.lower(),
                path,
                summary,
                body,
                dict(responses or {}),
                dict(query or {}),
                auth,
                tag,
                content_type,
            )
        )
        return view

    return register


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against ``model``; a `PayloadError` (400) names the first bad field."""
    data = request.get_json(silent=True)
    if data is None:
        raise PayloadError("request body must be a JSON object")
    _check_storable(data, "")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "body"
        raise PayloadError(f"{name}: {err['msg']}", field=name) from None


def _check_storable(value: Any, path: str) -> None:
    """Refuse what no column can hold (an integer past BIGINT, a NUL or lone surrogate): a 400, not a 500."""
    name = path or "body"
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise PayloadError(f"{name}: integer out of range", field=name)
    if isinstance(value, str) and storable(value) != value:
        raise PayloadError(f"{name}: contains a NUL character or an unpaired surrogate", field=name)
    if isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, name)
            _check_storable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_storable(item, f"{name}.{index}")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str


def spec() -> dict[str, Any]:
    """The OpenAPI document for every registered operation."""
    schemas: dict[str, Any] = {"Problem": Problem.model_json_schema()}
    paths: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for op in OPERATIONS:
        entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "responses": {}}
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _path_params(op.path)
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
            for n, d in op.query.items()
        ]
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {op.content_type: {"schema": ref(op.body)}}}
        for status, model in op.responses.items():
            content = {"application/json": {"schema": ref(model)}} if model else None
            entry["responses"][str(status)] = {
                "description": str(status),
                **({"content": content} if content else {}),
            }
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        entry["responses"].setdefault("400", {"description": "invalid input", "content": problem})
        if op.auth:
            entry["security"] = [{"bearer": []}]
            entry["responses"].setdefault(
                "401", {"description": "missing or wrong token", "content": problem}
            )
        # Any other status (404, 409, 413, 429, ...) is an error and always a problem document.
        entry["responses"]["default"] = {"description": "an error", "content": problem}
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "optout-gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
