"""Switchback: a blue/green traffic proxy with deprecation telemetry for HTTP JSON APIs."""

import os

__version__ = "0.1.0"

if os.environ.get("SWITCHBACK_PURE_PYTHON"):
    # Import the package's modules from their sources even where compiled ones sit beside them
    # (``proxy.http.native``): how the test suite checks the build a machine without a C
    # compiler runs.
    import sys
    from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
    from types import ModuleType

    class _Sources:
        @staticmethod
        def find_spec(
            name: str, path: list[str] | None = None, target: ModuleType | None = None
        ) -> ModuleSpec | None:
            if not name.startswith("proxy.") or not path:
                return None
            for folder in path:
                spec = FileFinder(folder, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(name)
                if spec is not None:
                    return spec
            return None

    sys.meta_path.insert(0, _Sources())  # type: ignore[arg-type]
