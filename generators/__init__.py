"""The factory: compile a service description (a spec, MCP tool metadata, an OpenAPI document)
into a verified env package, and synthesize its tasks over the tool graph.

The runtime (`envfactory_gym`) never imports this package; generated packages use only the
runtime's tool API.
"""
