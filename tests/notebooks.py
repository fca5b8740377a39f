"""Run the analysts' notebooks (notebooks/*.ipynb) headless, as `make notebooks` does, against a given lakehouse."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def execute(path: Path, lakehouse: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """The notebook executed top to bottom in a fresh kernel whose MARKETLAKE_LAKEHOUSE is lakehouse; a cell that
    raises fails the call (nbclient's CellExecutionError names the cell and the error)."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env={**os.environ, "MARKETLAKE_LAKEHOUSE": str(lakehouse)})
    return notebook


def figures(notebook: nbformat.NotebookNode) -> int:
    """The PNG images the executed notebook's cells displayed (matplotlib figures, inline)."""
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def stored_outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """The ids of the code cells that carry outputs or an execution count (what a committed notebook must not)."""
    return [
        cell.get("id", str(i))
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
