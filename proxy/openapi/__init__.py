"""Importing deprecations from an OpenAPI document: ``switchback import-openapi``.

``document`` reads the file and validates it (the only module here that does I/O); ``convert``
finds the deprecated operations, parameters and body properties; ``schemas`` walks schemas and
resolves ``$ref``; ``entries`` turns what was found into config entries and YAML.
"""
