"""Resolving and importing ``path/file.py:function`` entrypoints (in-process)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_image.entrypoint import (
    FALLBACK_MODULE_NAME,
    load_flow,
    parse_entrypoint,
    resolve_flow_file,
)
from runner_image.errors import EntrypointError, FlowImportError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_imports() -> Iterator[None]:
    """Undo the sys.path entries and modules that loading a flow adds."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write(root: Path, relative: str, code: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    write(source, "flows/hello.py", "def hello(name='world'):\n    return f'hi {name}'\n")
    return source


def test_parse_entrypoint() -> None:
    parsed = parse_entrypoint("flows/hello.py:hello")
    assert (parsed.path, parsed.attribute) == ("flows/hello.py", "hello")
    assert parse_entrypoint("a.py:Flows.run").attribute == "Flows.run"


@pytest.mark.parametrize(
    ("entrypoint", "fragment"),
    [
        ("flows/hello.py", "has no ':'"),
        (":hello", "no file path"),
        ("flows/hello.py:", "not a valid function name"),
        ("flows/hello.py:not-a-name", "not a valid function name"),
        ("", "non-empty string"),
    ],
)
def test_parse_entrypoint_rejects(entrypoint: str, fragment: str) -> None:
    with pytest.raises(EntrypointError, match=fragment):
        parse_entrypoint(entrypoint)


def test_load_flow(root: Path) -> None:
    flow = load_flow(root, "flows/hello.py:hello")
    assert flow(name="you") == "hi you"


@pytest.mark.parametrize(
    ("relative", "fragment"),
    [
        ("/etc/hosts.py", "must be relative"),
        ("../outside.py", "outside the source root"),
        ("flows/../../outside.py", "outside the source root"),
        ("flows/hello.txt", "not a .py file"),
        ("flows/missing.py", "not found"),
        ("flows", "not a .py file"),
    ],
)
def test_resolve_rejects(root: Path, relative: str, fragment: str) -> None:
    write(root.parent, "outside.py", "def main():\n    pass\n")
    write(root, "flows/hello.txt", "")
    with pytest.raises(EntrypointError, match=fragment):
        resolve_flow_file(root, relative)


def test_resolve_rejects_symlink_escape(root: Path) -> None:
    outside = write(root.parent, "secret.py", "def main():\n    pass\n")
    (root / "flows" / "link.py").symlink_to(outside)
    (root / "linkdir").symlink_to(root.parent, target_is_directory=True)

    with pytest.raises(EntrypointError, match="outside the source root"):
        resolve_flow_file(root, "flows/link.py")
    with pytest.raises(EntrypointError, match="outside the source root"):
        resolve_flow_file(root, "linkdir/secret.py")


def test_symlink_inside_root_is_allowed(root: Path) -> None:
    (root / "alias.py").symlink_to(root / "flows" / "hello.py")
    assert resolve_flow_file(root, "alias.py") == (root / "flows" / "hello.py").resolve()


def test_missing_and_non_callable_attributes(root: Path) -> None:
    write(root, "flows/values.py", "NUMBER = 3\n")
    with pytest.raises(EntrypointError, match="'nope' not found"):
        load_flow(root, "flows/hello.py:nope")
    with pytest.raises(EntrypointError, match="not callable"):
        load_flow(root, "flows/values.py:NUMBER")


def test_sibling_and_root_imports(root: Path) -> None:
    write(root, "flows/helpers.py", "PREFIX = 'sibling'\n")
    write(root, "shared/__init__.py", "")
    write(root, "shared/util.py", "SUFFIX = 'root'\n")
    code = (
        "from helpers import PREFIX\n"
        "from shared.util import SUFFIX\n\n"
        "def main():\n"
        "    return f'{PREFIX}+{SUFFIX}'\n"
    )
    write(root, "flows/main.py", code)

    assert load_flow(root, "flows/main.py:main")() == "sibling+root"


def test_import_error_is_wrapped(root: Path) -> None:
    write(root, "flows/broken.py", "raise RuntimeError('at import time')\n")
    write(root, "flows/syntax.py", "def f(:\n")

    with pytest.raises(FlowImportError, match="RuntimeError: at import time") as info:
        load_flow(root, "flows/broken.py:f")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "broken" not in sys.modules
    with pytest.raises(FlowImportError, match="SyntaxError"):
        load_flow(root, "flows/syntax.py:f")


def test_module_name_never_shadows(root: Path) -> None:
    write(root, "flows/json.py", "def main():\n    return __name__\n")
    write(root, "flows/my-flow.py", "def main():\n    return __name__\n")

    assert load_flow(root, "flows/json.py:main")() == FALLBACK_MODULE_NAME
    assert load_flow(root, "flows/my-flow.py:main")() == FALLBACK_MODULE_NAME
    assert load_flow(root, "flows/hello.py:hello").__module__ == "hello"
    assert sys.modules["json"].__name__ == "json"
