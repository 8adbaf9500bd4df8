"""Reading an OpenAPI document from a file, and importing its deprecations.

``import_file(path, ...)`` reads YAML or JSON, checks that it is an OpenAPI 3.x or Swagger 2.0
document, converts it (``proxy.openapi.convert``, ``proxy.openapi.entries``) and validates it
with ``openapi-spec-validator``. Validation only warns: real documents are often slightly
invalid (a ``$ref`` with siblings in 3.0, a missing ``description``) and still say plainly
what is deprecated; ``strict`` makes a warning an error.

Every refusal is a ``ConfigError`` whose message names the file and the place: not a file, not
UTF-8, not YAML or JSON, not an OpenAPI document, a ``$ref`` that cannot be resolved. A
``$ref`` to another file is read relative to the document (local files only, YAML or JSON).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from referencing import Resource
from referencing.exceptions import NoSuchResource

from proxy.config.values import dotted
from proxy.config.yaml_loader import load_yaml
from proxy.errors import ConfigError
from proxy.openapi.convert import convert
from proxy.openapi.entries import entries, to_yaml
from proxy.openapi.schemas import Refs

MAX_WARNINGS = 20  # validation messages shown; the rest are counted


@dataclass(frozen=True, slots=True)
class Imported:
    text: str  # the YAML to print
    count: int  # entries in it
    notes: list[str]  # elements left out, dates ignored
    warnings: list[str]  # what validation found


def import_file(
    path: str,
    *,
    deprecated_on: dt.date,
    base_path: str | None = None,
    strict: bool = False,
) -> Imported:
    doc = read_document(path)
    version = describe(doc, path)
    refs = Refs(doc, Path(path).resolve().as_uri(), path, retrieve=_retrieve)
    found = convert(doc, refs, base_path)
    rules, date_notes = entries(found.elements, deprecated_on, path)
    warnings = validate(doc, refs.uri, path)
    if strict and warnings:
        raise ConfigError(f"{warnings[0]} (--strict: the document must be valid)")
    base = "the document's (servers, basePath)" if base_path is None else repr(base_path)
    header = [
        f"Imported by switchback import-openapi from {os.path.basename(path)} ({version}).",
        f"Base path: {base}. Deprecated on {deprecated_on.isoformat()} where the document "
        "gives no date.",
    ]
    return Imported(to_yaml(rules, header), len(rules), found.notes + date_notes, warnings)


def read_document(path: str) -> dict[Any, Any]:
    """The document at ``path`` as a plain tree; JSON when it starts with ``{``, else YAML."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: byte {exc.start}: not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: the top level is not an object")
        return doc
    return load_yaml(text, path)


def describe(doc: Mapping[Any, Any], path: str) -> str:
    """``OpenAPI 3.1.0, "Title" 1.0`` or a ``ConfigError`` if ``doc`` is not an API document."""
    if "openapi" in doc:
        version = str(doc["openapi"])
        if not version.startswith("3."):
            raise ConfigError(f"{path}: openapi: {version!r} is not a version 3.x this reads")
        name = f"OpenAPI {version}"
    elif "swagger" in doc:
        if str(doc["swagger"]) != "2.0":
            raise ConfigError(f"{path}: swagger: {doc['swagger']!r} is not '2.0'")
        name = "Swagger 2.0"
    else:
        raise ConfigError(
            f"{path}: not an OpenAPI document (no 'openapi: 3.x' or 'swagger: \"2.0\"' "
            "at the top level)"
        )
    paths = doc.get("paths")
    if paths is not None and not isinstance(paths, Mapping):
        raise ConfigError(f"{path}: paths: is not a mapping of path templates")
    info = doc.get("info")
    if isinstance(info, Mapping) and info.get("title"):
        name += f', "{info["title"]}" {info.get("version", "")}'.rstrip()
    return name


def validate(doc: Mapping[Any, Any], uri: str, path: str) -> list[str]:
    """What ``openapi-spec-validator`` finds wrong, one line each (at most ``MAX_WARNINGS``)."""
    # openapi-spec-validator >= 0.9 switches to jsonschema-rs whenever that is installed (it
    # comes with other tools), whose messages read differently and carry the schema dump:
    # the pure-Python backend, unless the user chose one.
    os.environ.setdefault("OPENAPI_SPEC_VALIDATOR_SCHEMA_VALIDATOR_BACKEND", "jsonschema")
    from jsonschema_path import SchemaPath
    from openapi_spec_validator.shortcuts import get_validator_cls

    out: list[str] = []
    count = 0
    try:
        validator = get_validator_cls(doc)(SchemaPath.from_dict(doc, base_uri=uri))
        for error in validator.iter_errors():
            count += 1
            if count <= MAX_WARNINGS:
                where = dotted(*error.path) or "top level"
                out.append(f"{path}: {where}: {' '.join(error.message.split())}")
    except Exception as exc:  # the validator stops on what it cannot read; the import stands
        out.append(f"{path}: validation stopped: {type(exc).__name__}: {exc}"[:300])
    if count > MAX_WARNINGS:
        out.append(f"{path}: and {count - MAX_WARNINGS} more validation problems")
    return out


def _retrieve(uri: str) -> Resource[Any]:
    """Another file a ``$ref`` names: local files only."""
    if not uri.startswith("file://"):
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(uri).path)
    try:
        return Resource.opaque(read_document(path))
    except ConfigError:
        raise NoSuchResource(ref=uri) from None  # type: ignore[call-arg]
