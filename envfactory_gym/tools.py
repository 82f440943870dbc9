"""The tool API env packages build on: the `@tool` decorator, `ToolError`, and schema derivation.

A tool is a plain typed function whose first parameter is the database handle. Its JSON schema
(OpenAI / MCP function format) comes from the signature and the docstring, and the same pydantic
model validates the arguments an agent sends before the function runs.
"""

from __future__ import annotations

import ast
import inspect
import operator
import re
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

ToolKind = Literal["read", "write", "generic"]
MAX_LIST_ITEMS = 100
"""The bound on a list argument that declares none (its schema says `maxItems`)."""


class ToolError(Exception):
    """A failure the agent should see (not found, not allowed, not enough balance...)."""


class ArgumentError(ToolError):
    """The arguments do not match the tool's schema: a format error, penalized in the reward."""


class Tool:
    """One callable tool: the function, its argument model and its JSON schema."""

    def __init__(self, fn: Callable[..., Any], kind: ToolKind = "read") -> None:
        self.fn = fn
        self.name = fn.__name__
        self.kind = kind
        summary, arg_docs = parse_docstring(fn.__doc__ or "")
        self.description = summary
        self.arguments_model = _arguments_model(fn, arg_docs)
        self._validator = self.arguments_model.__pydantic_validator__
        self._nested = _has_models(self.arguments_model)
        self.parameters = _inline_refs(self.arguments_model.model_json_schema())
        self.parameters.pop("title", None)
        for prop in self.parameters.get("properties", {}).values():
            prop.pop("title", None)

    @property
    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema: `{"type": "function", "function": {...}}`."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check arguments against the schema; raise `ArgumentError` naming the bad argument."""
        if not isinstance(arguments, dict):
            raise ArgumentError(
                f"arguments for {self.name} must be a JSON object, got {type(arguments).__name__}"
            )
        try:
            values = self._validator.validate_python(arguments).__dict__
        except ValidationError as exc:
            raise ArgumentError(_describe_validation_error(self.name, exc)) from None
        if self._nested:
            return {name: _plain(value) for name, value in values.items()}
        return dict(values)

    def __call__(self, db: Any, **arguments: Any) -> Any:
        return self.fn(db, **arguments)

    def __reduce__(self) -> tuple[Any, tuple[str, str, str]]:
        """Pickle by reference (its module, or its env package's folder), never by value."""
        return _load_tool, (self.fn.__module__, self.fn.__code__.co_filename, self.name)

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, kind={self.kind!r})"


def _load_tool(module: str, filename: str, name: str) -> Tool:
    """The tool `name` of a module that is loaded, importable, or an env package's tools.py."""
    import importlib
    import sys
    from pathlib import Path

    if module not in sys.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            from envfactory_gym.package import load_package

            return load_package(str(Path(filename).parent)).tools[name]
    return getattr(sys.modules[module], name)


def tool(fn: Callable[..., Any] | None = None, *, kind: ToolKind = "read") -> Any:
    """Mark a function as a tool: `@tool` or `@tool(kind="write")`."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, kind=kind)

    return wrap(fn) if fn is not None else wrap


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument descriptions."""
    doc = inspect.cleandoc(doc)
    parts = re.split(r"^\s*Args:\s*$", doc, maxsplit=1, flags=re.MULTILINE)
    summary = " ".join(parts[0].split())
    arg_docs: dict[str, str] = {}
    if len(parts) == 2:
        section = re.split(r"^\s*(?:Returns|Raises|Yields|Examples?):\s*$", parts[1], flags=re.M)[0]
        current = None
        for line in section.splitlines():
            match = re.match(r"^\s{0,8}(\w+)\s*(?:\([^)]*\))?:\s*(.*)$", line)
            if match:
                current = match.group(1)
                arg_docs[current] = match.group(2).strip()
            elif current and line.strip():
                arg_docs[current] += " " + line.strip()
    return summary, arg_docs


def _arguments_model(fn: Callable[..., Any], arg_docs: dict[str, str]) -> type[BaseModel]:
    hints = get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())[1:]  # the first is the db handle
    fields: dict[str, Any] = {}
    for param in params:
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        bound = {"max_length": MAX_LIST_ITEMS} if get_origin(annotation) is list else {}
        fields[param.name] = (
            annotation,
            Field(default, description=arg_docs.get(param.name), **bound),
        )
    config = ConfigDict(extra="forbid", strict=True)
    return create_model(f"{fn.__name__}_arguments", __config__=config, **fields)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace `$ref`s by their definitions: function-calling schemas are read best inline."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = dict(defs[node["$ref"].split("/")[-1]])
                target.pop("title", None)
                return resolve(target)
            return {
                k: resolve(v) for k, v in node.items() if k != "title" or not isinstance(v, str)
            }
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


def _has_models(model: type[BaseModel]) -> bool:
    """Whether any argument's type holds a pydantic model (validated values then need dumping)."""

    def holds(annotation: Any) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return True
        return any(holds(arg) for arg in get_args(annotation))

    return any(holds(field.annotation) for field in model.model_fields.values())


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _describe_validation_error(tool_name: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "missing":
            problems.append(f"missing required argument '{where}'")
        elif err["type"] == "extra_forbidden":
            problems.append(f"unknown argument '{where}'")
        else:
            problems.append(f"argument '{where}': {err['msg']}")
    return f"invalid arguments for {tool_name}: " + "; ".join(problems)


_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.USub: operator.neg, ast.UAdd: operator.pos,
}  # fmt: skip


def arithmetic(expression: str) -> str:
    """The value of an arithmetic expression (numbers, + - * / and parentheses), rounded to two
    decimals, for a package's `calculate` tool: parsed, never `eval`-ed; anything else is a
    `ToolError`."""
    if len(expression) > 200 or not set(expression) <= set("0123456789+-*/(). "):
        raise ToolError("only numbers, + - * / and parentheses are allowed")
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except (SyntaxError, ZeroDivisionError, RecursionError, OverflowError) as exc:
        raise ToolError(f"cannot calculate {expression!r}: {exc}") from None
    return str(round(float(value), 2))


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ToolError("only numbers, + - * / and parentheses are allowed")
