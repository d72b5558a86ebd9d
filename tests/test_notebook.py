"""The annotated notebook runs from scratch on a fresh kernel, and the committed copy is a clean, light record."""

from pathlib import Path

import nbformat
import pytest

from tests.helpers import REPO

NOTEBOOK = REPO / "notebooks" / "The Annotated GAT.ipynb"
MAX_BYTES = 1_500_000  # outputs are kept so the notebook reads well on a code host, but small


def _parameters_index(notebook: nbformat.NotebookNode) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


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
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / "runs").rglob("*"))
