"""The committed notebooks: at least the four stories, valid, and stripped of outputs so that diffs stay readable.
They are executed against real lakehouses where those are built: the gold notebooks in test_silver_pipeline, the
models notebook in test_models."""

from __future__ import annotations

import nbformat

from tests import notebooks

STORIES = {"1_exchange_health", "2_commerce", "3_customers", "4_models"}
STRIP = ".venv/bin/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb"


def test_every_story_has_a_valid_notebook_committed_without_outputs() -> None:
    paths = notebooks.notebook_paths()
    assert {p.stem for p in paths} >= STORIES
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.kernelspec.name == "python3", path.name
        assert notebooks.stored_outputs(notebook) == [], f"{path.name} carries outputs; strip them: {STRIP}"
