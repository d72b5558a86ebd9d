"""The annotated notebook runs from scratch on a fresh kernel, and the committed copy is a clean, light record."""

import base64
import io
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from tests.helpers import REPO

NOTEBOOK = REPO / "notebooks" / "The Annotated GAT.ipynb"
MAX_BYTES = 1_500_000  # outputs are kept so the notebook reads well on a code host, but small
# Figures must be legible where they are read: drawn at MIN_DPI or more (10 pt text is then 14 pixels high or more),
# and no wider than a notebook page shows without shrinking the picture, and its text, to fit.
MIN_DPI = 100
MAX_WIDTH_PIXELS = 1300


def _parameters_index(notebook: nbformat.NotebookNode) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def _figures(notebook: nbformat.NotebookNode) -> list[tuple[int, int, int, float | None]]:
    """``(cell index, width, height, dpi)`` of every PNG in the outputs; the dpi is the one the PNG records (its
    pHYs chunk, which matplotlib writes), None if it records none."""
    figures = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                image = Image.open(io.BytesIO(base64.b64decode(output.data["image/png"])))
                dpi = image.info.get("dpi")
                figures.append((index, *image.size, dpi[0] if dpi else None))
    return figures


def _assert_legible_figures(notebook: nbformat.NotebookNode) -> None:
    figures = _figures(notebook)
    assert figures, "the notebook shows no figure"
    for index, width, height, dpi in figures:
        assert dpi is not None and dpi >= MIN_DPI, f"cell {index}: a {width}x{height} figure at {dpi} dpi"
        assert width <= MAX_WIDTH_PIXELS, f"cell {index}: a figure {width} pixels wide shows shrunk, text and all"


def test_committed_notebook_is_valid_light_and_has_clean_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    _parameters_index(notebook)
    assert NOTEBOOK.stat().st_size < MAX_BYTES, f"{NOTEBOOK.name} is {NOTEBOOK.stat().st_size:,} bytes: shrink figures"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs or "parameters" in cell.metadata.get("tags", []) for cell in code_cells[1:]), (
        "the committed notebook must keep the outputs of a real run"
    )
    errors = [output for cell in code_cells for output in cell.outputs if output.output_type == "error"]
    assert not errors
    _assert_legible_figures(notebook)


def test_notebook_executes_from_scratch(planetoid_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel is a fresh process: it sees the environment and the injected parameters, nothing else.
    monkeypatch.setenv("GAT_DATA_MIRROR", str(planetoid_folder))
    monkeypatch.delenv("GAT_NOTEBOOK_TENSORBOARD", raising=False)
    parameters = {
        "EPOCHS": 5,
        "TSNE_NODES": 200,
        "DATA_DIR": str(tmp_path / "data"),
        "RUNS_DIR": str(tmp_path / "runs"),
        "MODELS_DIR": str(tmp_path / "models"),
    }
    injected = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(_parameters_index(notebook) + 1, injected)

    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any cell error

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    text = "".join(output.get("text", "") for cell in code_cells for output in cell.outputs)
    assert "5 epochs in" in text  # the injected budget was used
    assert "step by step == layer(x, edge_index)" in text
    _assert_legible_figures(notebook)
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / "runs").rglob("*"))
