"""What the extension zip carries, from the real import graph: the add-on's modules, the modules of
``motion`` and ``render`` they import (with every package ``__init__`` on the way), and the data files
of those packages.

Imports are read from the source with ``ast``. Every import of the add-on's own modules and of the
entry script is required, and so is every import that runs when its module is imported. An import
inside a function of another module is followed only into a module a stock Blender can import (its
import-time imports need nothing but the standard library, numpy and Blender's own modules); the
others sit on venv-only paths (bodies baked with torch, YAML scenes), which a stock Blender hands to
the ``avatarcine`` command. A required module that a stock Blender cannot import is an error.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ADDON = "blender_addon"
ENTRIES = (ADDON, "render.blender_entry")        # the add-on, and the script its render button runs
BUNDLED = ("motion", "render")
# Besides the standard library, what a stock Blender's Python can import.
STOCK_BLENDER = frozenset({"bpy", "bpy_extras", "bmesh", "mathutils", "gpu", "gpu_extras", "bl_math", "blf",
                           "aud", "idprop", "imbuf", "freestyle", "numpy"})
# Package data (the same patterns as [tool.setuptools.package-data] in pyproject.toml).
DATA_SUFFIXES = (".json", ".yaml", ".npz")
MANIFEST = "blender_manifest.toml"


@dataclass(frozen=True)
class Import:
    """One imported module (absolute name) of a source file."""
    module: str
    at_import: bool      # runs when the importing module is imported (not inside a function)
    optional: bool       # inside ``try: ... except ImportError``


def _catches_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {k.id for k in kinds if isinstance(k, ast.Name)} if handler.type else {"Exception"}
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _statements(node: ast.AST, at_import: bool = True, optional: bool = False):
    """(import statement, at_import, optional) for every import under ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, at_import, optional
        inner_at_import = at_import and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.Try) and _catches_import_error(child):
            for stmt in child.body:
                yield from _statements(ast.Module(body=[stmt], type_ignores=[]), inner_at_import, True)
            for part in (*child.handlers, *child.orelse, *child.finalbody):
                yield from _statements(part, inner_at_import, optional)
            continue
        yield from _statements(child, inner_at_import, optional)


def source_file(root: Path, module: str) -> Path | None:
    """The file of ``module`` under ``root`` (a package's ``__init__.py``), or None."""
    path = root.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imports_of(root: Path, module: str) -> list[Import]:
    """Every module that importing or running ``module`` (a file under ``root``) may import, parent
    packages included: ``import a.b`` imports ``a`` and ``a.b``; ``from a import b`` imports ``a``
    and ``a.b`` when that is a module."""
    path = source_file(root, module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for stmt, at_import, optional in _statements(ast.parse(path.read_text(), str(path))):
        if isinstance(stmt, ast.Import):
            targets = [alias.name for alias in stmt.names]
        else:
            base = stmt.module or ""
            if stmt.level:
                parts = package.split(".")[: len(package.split(".")) - stmt.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in stmt.names
                                if a.name != "*" and source_file(root, f"{base}.{a.name}")]
        for target in targets:
            parts = target.split(".")
            out += [Import(".".join(parts[:i]), at_import, optional) for i in range(1, len(parts) + 1)]
    return out


def _ours(root: Path, module: str) -> bool:
    return module.split(".")[0] in (ADDON, *BUNDLED) and source_file(root, module) is not None


class Bundle:
    """The import graph of the add-on's entries under ``root`` (the folder holding the packages)."""

    def __init__(self, root: Path, entries: tuple[str, ...] = ENTRIES):
        self.root = Path(root)
        self.imports = lru_cache(maxsize=None)(lambda module: imports_of(self.root, module))
        self.modules = self._walk(entries)

    def needs(self, module: str, seen: frozenset = frozenset()) -> set[str]:
        """Top-level names outside our packages that importing ``module`` requires."""
        out = set()
        for imp in self.imports(module):
            if not imp.at_import or imp.module in seen or imp.module == module:
                continue
            if _ours(self.root, imp.module):
                out |= self.needs(imp.module, seen | {module})
            elif not imp.optional and imp.module.split(".")[0] not in (ADDON, *BUNDLED):
                out.add(imp.module.split(".")[0])
        return out

    def stock_importable(self, module: str) -> bool:
        return self.needs(module) <= STOCK_BLENDER | set(sys.stdlib_module_names)

    def _walk(self, entries: tuple[str, ...]) -> list[str]:
        modules, todo = set(), [(entry, True) for entry in entries]
        while todo:
            module, required = todo.pop()
            if module in modules:
                continue
            if not self.stock_importable(module):
                if required:
                    missing = sorted(self.needs(module) - STOCK_BLENDER - set(sys.stdlib_module_names))
                    raise ValueError(f"{module} needs {', '.join(missing)} at import: a stock Blender lacks it")
                continue
            modules.add(module)
            parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
            todo += [(p, True) for p in parents]
            runs_in_blender = module in entries or module.split(".")[0] == ADDON
            todo += [(imp.module, imp.at_import or runs_in_blender) for imp in self.imports(module)
                     if _ours(self.root, imp.module)]
        return sorted(modules)

    def files(self) -> list[tuple[Path, str]]:
        """(source path, name in the zip): the add-on's files at the zip's top, ``motion/`` and
        ``render/`` beside them, each bundled package's data files, and the manifest."""
        addon_dir = self.root / ADDON
        out = [(addon_dir / MANIFEST, MANIFEST)]
        for module in self.modules:
            path = source_file(self.root, module)
            base = addon_dir if module.split(".")[0] == ADDON else self.root
            out.append((path, path.relative_to(base).as_posix()))
            if path.name == "__init__.py" and module.split(".")[0] in BUNDLED:
                out += [(data, data.relative_to(base).as_posix()) for data in sorted(path.parent.iterdir())
                        if data.is_file() and data.suffix in DATA_SUFFIXES]
        return sorted(out, key=lambda item: item[1])
