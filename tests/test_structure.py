"""The package's shape holds the limits the structure issue set: no import cycle (imports inside
functions count), no module over 700 lines, no function over 100 lines. ``scripts/code_shape.py``
prints the figures."""

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 100


@pytest.fixture(scope="module")
def code_shape():
    spec = importlib.util.spec_from_file_location("code_shape", ROOT / "scripts" / "code_shape.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["code_shape"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["code_shape"]


def test_no_import_cycle(code_shape):
    assert code_shape.measure(ROOT / "musicsearch").cycles == []


def test_no_module_or_function_too_long(code_shape):
    shape = code_shape.measure(ROOT / "musicsearch")
    assert {m: n for m, n in shape.sizes.items() if n > MAX_MODULE_LINES} == {}
    assert [f for f in shape.functions if f.lines > MAX_FUNCTION_LINES] == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "musicsearch" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "musicsearch"


def test_a_cycle_through_an_import_inside_a_function_is_found(code_shape, tmp_path):
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from .b import x\n",
            "b.py": "def x():\n    from . import a\n    return a\n",
            "c.py": "from musicsearch.a import x\n",
            "sub/__init__.py": "from .leaf import y\n",
            "sub/leaf.py": "from ..c import x\ny = x\n",
        },
    )
    assert code_shape.measure(pkg).cycles == [["musicsearch.a", "musicsearch.b"]]


def test_sizes_and_function_lengths_are_counted_exactly(code_shape, tmp_path):
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "m.py": "def f():\n    a = 1\n    return a\n\n\nclass C:\n    def g(self):\n        pass\n",
        },
    )
    shape = code_shape.measure(pkg)
    assert shape.sizes == {"musicsearch": 0, "musicsearch.m": 8}
    assert [(f.name, f.lines) for f in shape.functions] == [("f", 3), ("g", 2)]
