"""No private attribute of the trino client is used by the SDK (a client upgrade may change them).

The rule is checked on the source, for every carbon_sdk module that touches the client: the ones
that import it (``import trino``, ``from trino...``, ``import_client("trino...")``) and the
segment reader, which handles the client's segment objects. In those modules an attribute whose
name starts with one underscore is only read from ``self`` or ``cls`` (the module's own classes),
no ``getattr``/``setattr``/``hasattr`` names a private attribute, and no private module of the
client (``trino._version``...) is imported. This is stricter than "private attributes of trino
objects" (it needs no type inference, so it cannot be fooled by an alias), and it costs the
modules nothing: their own helpers are module-level functions or public methods.
"""

from __future__ import annotations

import ast
from pathlib import Path

import carbon_sdk

PACKAGE = Path(carbon_sdk.__file__).parent
ALWAYS = ("trino.py", "_spool.py")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports_trino(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name == "trino" or a.name.startswith("trino.") for a in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module == "trino" or node.module.startswith("trino."))
        ):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "import_client"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).split(".")[0] == "trino"
        ):
            return True
    return False


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = node.args
            if (
                node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(args) > 1
                and isinstance(args[1], ast.Constant)
                and _is_private(str(args[1].value))
            ):
                found.append(f"{where}: {ast.unparse(node)}")
            if (
                node.func.id == "import_client"
                and args
                and isinstance(args[0], ast.Constant)
                and any(_is_private(p) for p in str(args[0].value).split("."))
            ):
                found.append(f"{where}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "trino" and (
                any(_is_private(p) for p in parts) or any(_is_private(a.name) for a in node.names)
            ):
                found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "trino" and any(_is_private(p) for p in parts):
                    found.append(f"{where}: import {alias.name}")
    return found


def _client_modules() -> list[Path]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "dev" in path.relative_to(PACKAGE).parts:
            continue  # the local stack never touches the client
        if path.name in ALWAYS or _imports_trino(ast.parse(path.read_text(encoding="utf-8"))):
            modules.append(path)
    return modules


def test_the_scan_covers_the_connector_and_the_segment_reader() -> None:
    names = {p.name for p in _client_modules()}
    assert set(ALWAYS) <= names


def test_no_private_attribute_of_the_trino_client() -> None:
    found = [v for path in _client_modules() for v in _violations(path)]
    assert not found, "private attributes used (a client upgrade breaks them):\n" + "\n".join(found)


def test_the_scan_catches_what_the_old_connector_did(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    code = (
        "def f(cur, mapper, client, response):\n"
        "    cur._query\n"
        "    mapper.RowMapperFactory()._create_value_mapper(1)\n"
        "    client.CODECS_UNAVAILABLE, getattr(cur, '_request')\n"
        "    from trino._version import __version__\n"
    )
    sample.write_text(code, encoding="utf-8")
    found = _violations(sample)
    assert len(found) == 4, found  # CODECS_UNAVAILABLE is public by name: not counted
