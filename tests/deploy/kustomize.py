"""What ``kustomize build`` makes of deploy/kubernetes, in Python: the subset of kustomize the
project's kustomizations use, and an error for anything else, so that a rendering never
silently differs from kustomize's (a test compares the two where kubectl is installed).

Understood: ``resources`` (YAML files and directories holding a kustomization), ``components``
(directories holding a ``kind: Component``), ``configMapGenerator`` with ``files``
(``key=path`` or ``path``) and ``literals`` and ``options.disableNameSuffixHash: true``, and
``namespace``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KUSTOMIZATION = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN = {"apiVersion", "kind", "resources", "components", "configMapGenerator", "namespace"}
GENERATOR_KEYS = {"name", "files", "literals", "options"}


class Unsupported(Exception):
    """A kustomization uses something this renderer does not implement."""


def kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION:
        if (directory / name).is_file():
            return directory / name
    raise Unsupported(f"{directory}: no kustomization file")


def build(directory: Path, components: list[Path] | None = None) -> list[Object]:
    """The objects of the kustomization in ``directory``, with ``components`` added as an
    overlay's ``components:`` would add them (after its own)."""
    spec = yaml.safe_load(kustomization_file(directory).read_text())
    objects = _build(directory, spec, "Kustomization")
    for component in components or []:
        objects = _apply_component(component, objects)
    return objects


def _build(directory: Path, spec: Object, kind: str) -> list[Object]:
    unknown = set(spec) - KNOWN
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)} not implemented")
    if spec.get("kind", "Kustomization") != kind:
        raise Unsupported(f"{directory}: a {spec.get('kind')} where a {kind} belongs")
    objects: list[Object] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for generator in spec.get("configMapGenerator", []):
        objects.append(_config_map(directory, generator))
    for component in spec.get("components", []):
        objects = _apply_component(directory / component, objects)
    if "namespace" in spec:
        for obj in objects:
            obj.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return objects


def _apply_component(directory: Path, objects: list[Object]) -> list[Object]:
    spec = yaml.safe_load(kustomization_file(directory).read_text())
    return objects + _build(directory, spec, "Component")


def _config_map(directory: Path, generator: Object) -> Object:
    unknown = set(generator) - GENERATOR_KEYS
    if unknown:
        raise Unsupported(f"configMapGenerator {generator.get('name')}: {sorted(unknown)}")
    options = generator.get("options", {})
    if options != {"disableNameSuffixHash": True}:
        raise Unsupported(f"configMapGenerator options {options}: only disableNameSuffixHash")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, sep, path = entry.partition("=")
        if not sep:
            key, path = Path(entry).name, entry
        data[key] = (directory / path).read_text()
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": data,
    }
