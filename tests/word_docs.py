"""Word documents for tests, built with the examples' own table builder
(examples/build_docx.py: `"^"` merges a cell into the one above, `"<"` into the one left)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from tests.conftest import EXAMPLES


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_docx", EXAMPLES / "build_docx.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_docx = _builder()

Block = str | Sequence[Sequence[str]]  # a paragraph, or a table's rows


def word_plan(path: Path, *blocks: Block) -> Path:
    """Write a .docx of paragraphs (`# ` for a heading) and tables, in the order given."""
    document = build_docx.new_document()
    for block in blocks:
        if isinstance(block, str) and block.startswith("# "):
            document.add_heading(block[2:], 1)
        elif isinstance(block, str):
            document.add_paragraph(block)
        else:
            build_docx.plan_table(document, block)
    document.save(str(path))
    return path
