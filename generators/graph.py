"""The tool-dependency graph: tools and typed values as nodes; an edge from a tool to each value
type its output holds, and from each value type to the tools that take it as an argument.

A value type is `entity.column`, with foreign keys typed as the key they point to (an order's
`customer_id` is `customers.customer_id`), so an edge says "this tool's output can feed that
tool's input". Task synthesis walks it backwards from a goal tool to what the user knows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx

from envfactory_gym.generators.spec import Entity, Spec, ToolSpec


def value_type(spec: Spec, entity: Entity, column: str) -> str:
    """The type of a column's values: foreign keys share the type of the key they hold."""
    target = entity.column(column).references
    return f"{target}.{spec.entity(target).key}" if target else f"{entity.name}.{column}"


def tool_inputs(spec: Spec, tool: ToolSpec) -> dict[str, tuple[str, bool]]:
    """Argument -> (value type, required) of a tool."""
    if tool.pattern == "custom":
        return {a.name: (f"arg.{a.name}", a.required) for a in tool.arguments}
    if tool.pattern == "transfer":
        assert tool.transfer is not None
        move = tool.transfer
        entity = spec.entity(move.entity)
        key = value_type(spec, entity, entity.key)
        amount = value_type(spec, entity, move.column)
        return {move.from_arg: (key, True), move.to_arg: (key, True),
                move.amount_arg: (amount, True)}  # fmt: skip
    entity = spec.entity(tool.entity or "")
    if tool.pattern == "get":
        by = tool.by or entity.key
        return {by: (value_type(spec, entity, by), True)}
    if tool.pattern == "list":
        return {f.argument: (value_type(spec, entity, f.column), f.required) for f in tool.filters}
    if tool.pattern == "create":
        found = {f: (value_type(spec, entity, f), True) for f in tool.fields if f != entity.key}
        found |= {f: (value_type(spec, entity, f), False) for f in tool.optional}
        return found
    found = {entity.key: (value_type(spec, entity, entity.key), True)}
    if tool.pattern == "update":
        found |= {f: (value_type(spec, entity, f), False) for f in tool.fields}
    return found


def tool_outputs(spec: Spec, tool: ToolSpec) -> set[str]:
    """The value types a tool's output holds."""
    if tool.pattern == "custom":
        return set()
    if tool.pattern == "transfer":
        assert tool.transfer is not None
        entity = spec.entity(tool.transfer.ledger or tool.transfer.entity)
    else:
        entity = spec.entity(tool.entity or "")
    if tool.pattern == "delete":
        return {value_type(spec, entity, entity.key)}
    found = {value_type(spec, entity, c.name) for c in entity.columns}
    for child_name in tool.include:
        child = spec.entity(child_name)
        found |= {value_type(spec, child, c.name) for c in child.columns}
    return found


def build_graph(spec: Spec) -> nx.DiGraph:
    """Tools (`tool:<name>`) and value types (`value:<entity.column>`), with `produces` and
    `feeds` edges."""
    graph = nx.DiGraph(name=spec.name)
    for tool in spec.tools:
        graph.add_node(f"tool:{tool.name}", kind="tool", pattern=tool.pattern,
                       writes=tool.writes)  # fmt: skip
        for value in sorted(tool_outputs(spec, tool)):
            graph.add_node(f"value:{value}", kind="value")
            graph.add_edge(f"tool:{tool.name}", f"value:{value}", relation="produces")
        for argument, (value, required) in sorted(tool_inputs(spec, tool).items()):
            graph.add_node(f"value:{value}", kind="value")
            graph.add_edge(f"value:{value}", f"tool:{tool.name}", relation="feeds",
                           argument=argument, required=required)  # fmt: skip
    return graph


def producers(graph: nx.DiGraph, value: str) -> list[str]:
    """Tools whose output holds values of type `value`, by name."""
    node = f"value:{value}"
    if node not in graph:
        return []
    return sorted(p[5:] for p in graph.predecessors(node))


def tool_edges(graph: nx.DiGraph) -> list[tuple[str, str, str]]:
    """(tool, tool, value type): the first tool's output can feed the second's argument."""
    edges = set()
    for node, data in graph.nodes(data=True):
        if data["kind"] != "value":
            continue
        for source in graph.predecessors(node):
            for target in graph.successors(node):
                if source != target:
                    edges.add((source[5:], target[5:], node[6:]))
    return sorted(edges)


def graph_summary(graph: nx.DiGraph) -> dict[str, Any]:
    tools = [n for n, d in graph.nodes(data=True) if d["kind"] == "tool"]
    return {
        "name": graph.graph.get("name"),
        "tools": len(tools),
        "value_types": graph.number_of_nodes() - len(tools),
        "edges": graph.number_of_edges(),
        "tool_to_tool_edges": len(tool_edges(graph)),
    }


def write_graph_json(graph: nx.DiGraph, path: Path) -> None:
    data = nx.node_link_data(graph, edges="edges")
    data["summary"] = graph_summary(graph)
    data["tool_edges"] = [list(edge) for edge in tool_edges(graph)]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def draw_graph_png(graph: nx.DiGraph, path: Path) -> None:
    """A picture of the tool-to-tool graph (matplotlib, imported only here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tools = nx.DiGraph()
    for node, data in graph.nodes(data=True):
        if data["kind"] == "tool":
            tools.add_node(node[5:], writes=data["writes"])
    for source, target, _ in tool_edges(graph):
        tools.add_edge(source, target)
    figure, axes = plt.subplots(figsize=(11, 8))
    layout = nx.spring_layout(tools, seed=0, k=1.2)
    colors = ["#d95f02" if tools.nodes[n]["writes"] else "#1b9e77" for n in tools]
    nx.draw_networkx(tools, layout, ax=axes, node_color=colors, node_size=900, font_size=8,
                     arrowsize=12, edge_color="#999999")  # fmt: skip
    axes.set_title(f"{graph.graph.get('name')}: tool graph (orange writes, green reads)")
    axes.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
