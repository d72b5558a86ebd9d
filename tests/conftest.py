"""Shared fixtures: where the real Planetoid files are, and Cora / CiteSeer loaded once per test session.

Tests never touch the internet: `PLANETOID_URL` and `PPI_URL` (the datasets' public homes) point at a closed
local port for every test, so a missing file fails at once instead of being downloaded.

Real data comes from a local mirror: ``$GAT_DATA_MIRROR`` if set, else ``<repo>/../shared/datasets/planetoid``.
Without one, tests that need it are skipped, except in CI (``CI=true``) where they fail: CI must run them.

A test that takes a ``device`` argument runs on the CPU and, where PyTorch sees a CUDA GPU, on it too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gat.data import download, ppi
from gat.data.graph import Graph
from gat.data.registry import load_dataset
from tests.helpers import train_synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_MIRROR = REPO.parent / "shared" / "datasets" / "planetoid"
OFFLINE_URL = "http://127.0.0.1:9/"  # the discard port: nothing listens, so connections are refused at once
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
NEEDED = [name for dataset in ("cora", "citeseer") for name, _ in download.planetoid_files(dataset)]


def _holds_planetoid(mirror: str) -> bool:
    """True for a URL (it cannot be checked without fetching) or a folder with every Cora/CiteSeer file."""
    if "://" in mirror and not mirror.startswith("file://"):
        return True
    folder = Path(mirror.removeprefix("file://"))
    return all((folder / name).is_file() for name in NEEDED)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", DEVICES)


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "PLANETOID_URL", OFFLINE_URL)
    monkeypatch.setattr(ppi, "PPI_URL", OFFLINE_URL)


@pytest.fixture(scope="session")
def planetoid_mirror() -> str:
    """A mirror (folder or URL) holding the Cora and CiteSeer raw files."""
    for candidate in (os.environ.get(download.MIRROR_ENV), str(SHARED_MIRROR)):
        if candidate and _holds_planetoid(candidate):
            return candidate
    reason = f"no Planetoid files: set {download.MIRROR_ENV} to a folder or URL with the Cora/CiteSeer raw files"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def planetoid_folder(planetoid_mirror: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local folder holding the verified Cora and CiteSeer raw files (a mirror may be a URL)."""
    folder = tmp_path_factory.mktemp("planetoid")
    # Session fixtures start before the per-test _no_internet patch, so apply it here too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(download, "PLANETOID_URL", OFFLINE_URL)
        for dataset in ("cora", "citeseer"):
            download.ensure_planetoid(dataset, folder, mirror=planetoid_mirror)
    return folder


@pytest.fixture(scope="session")
def cora(planetoid_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Graph:
    """Cora as `load_dataset` returns it (row-normalised sparse features). Shared: do not modify it."""
    return load_dataset("cora", tmp_path_factory.mktemp("cora"), mirror=planetoid_folder)


@pytest.fixture(scope="session")
def citeseer(planetoid_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Graph:
    """CiteSeer as `load_dataset` returns it. Shared: do not modify it."""
    return load_dataset("citeseer", tmp_path_factory.mktemp("citeseer"), mirror=planetoid_folder)


@pytest.fixture(scope="session")
def synthetic_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The binary of a GAT trained for 1 epoch on the default synthetic graph (runs/ and models/ in a temp dir).
    Shared: a test that writes into its run's folder (pictures) trains its own with `train_synthetic`."""
    return train_synthetic(tmp_path_factory.mktemp("synthetic_run"))
