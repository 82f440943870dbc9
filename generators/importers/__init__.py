"""Importers: MCP tool metadata and OpenAPI documents -> specs.

`import_mcp` and `import_openapi` read a source into an `ImportResult` (the spec, the list of
what was defaulted and needs review, and how each tool's pattern was inferred); `write_spec`
writes it as YAML with the review items as comments. The CLI is `envfactory import`.
"""

from .common import ImportResult, render_spec, write_spec
from .mcp import import_mcp
from .openapi import import_openapi

__all__ = ["ImportResult", "import_mcp", "import_openapi", "render_spec", "write_spec"]
