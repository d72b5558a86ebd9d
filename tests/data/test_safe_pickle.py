"""The restricted unpickler loads the real Planetoid files and refuses anything that could run code."""

from __future__ import annotations

import collections
import os
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gat.data.safe_pickle import safe_load
from gat.errors import GATError


class _Exploit:
    """Pickles to "call ``function(*args)`` on load": the classic pickle attack."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _refuses(path: Path, forbidden: str) -> str:
    with pytest.raises(GATError) as caught:
        safe_load(path)
    message = str(caught.value)
    assert forbidden in message and str(path) in message and "not allowed" in message
    assert "\n" not in message
    return message


def test_loads_the_real_cora_files(planetoid_folder: Path) -> None:
    x, y, allx, graph = (safe_load(planetoid_folder / f"ind.cora.{suffix}") for suffix in ("x", "y", "allx", "graph"))
    assert isinstance(x, sp.csr_matrix) and x.shape == (140, 1433) and x.dtype == np.float32
    assert set(np.unique(x.data)) == {1.0}  # binary bag of words
    assert isinstance(y, np.ndarray) and y.shape == (140, 7) and (y.sum(axis=1) == 1).all()
    assert allx.shape == (1708, 1433)
    assert isinstance(graph, collections.defaultdict) and graph.default_factory is list
    assert len(graph) == 2708 and sum(len(neighbours) for neighbours in graph.values()) == 10858


def test_a_python2_numpy_scalar_loads(tmp_path: Path) -> None:
    # What Python 2 writes for numpy.float64(1.5): scalar(dtype("f8") with its state, 8 raw bytes).
    dtype = b"cnumpy\ndtype\nU\x02f8K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    payload = b"\x80\x02cnumpy.core.multiarray\nscalar\n" + dtype + b"U\x08" + struct.pack("<d", 1.5) + b"\x86R."
    (tmp_path / "scalar.pkl").write_bytes(payload)
    value = safe_load(tmp_path / "scalar.pkl")
    assert isinstance(value, np.float64) and value == 1.5


@pytest.mark.parametrize(
    "module, name",
    [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("__builtin__", "eval"), ("subprocess", "Popen")],
)
def test_a_forbidden_global_is_refused_before_it_runs(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    # Hand-written protocol-0 pickle: GLOBAL module.name, then REDUCE it with one string argument.
    argument = f"__import__('os').system({command!r})" if name == "eval" else command
    payload = f"c{module}\n{name}\n(V{argument}\ntR.".encode()
    (tmp_path / "evil.pkl").write_bytes(payload)
    _refuses(tmp_path / "evil.pkl", f"{module}.{name}")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("function", [os.system, subprocess.Popen, eval])
def test_pickles_made_by_python_are_refused_too(tmp_path: Path, protocol: int, function) -> None:
    marker = tmp_path / "pwned"
    argument = f"__import__('os').system('touch {marker}')" if function is eval else f"touch {marker}"
    if function is subprocess.Popen:
        argument = ["touch", str(marker)]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Exploit(function, argument), protocol=protocol))
    _refuses(path, function.__name__)
    assert not marker.exists()


def test_a_malicious_global_hidden_inside_real_looking_data_is_refused(tmp_path: Path) -> None:
    # An attacker appends the payload inside an otherwise valid adjacency dict.
    marker = tmp_path / "pwned"
    evil = collections.defaultdict(list, {0: [1], 1: _Exploit(os.system, f"touch {marker}")})
    path = tmp_path / "ind.cora.graph"
    path.write_bytes(pickle.dumps(evil, protocol=2))
    _refuses(path, "system")
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [("numpy", "load"), ("collections", "OrderedDict"), ("builtins", "getattr")])
def test_only_the_exact_allowed_names_resolve(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "odd.pkl"
    path.write_bytes(f"c{module}\n{name}\n.".encode())
    _refuses(path, f"{module}.{name}")


def test_a_truncated_file_is_a_clear_error(tmp_path: Path, planetoid_folder: Path) -> None:
    path = tmp_path / "ind.cora.allx"
    path.write_bytes((planetoid_folder / "ind.cora.allx").read_bytes()[:1000])
    with pytest.raises(GATError, match="cannot unpickle .*corrupt") as caught:
        safe_load(path)
    assert "\n" not in str(caught.value)
