"""Load the Planetoid pickles without trusting them.

The Planetoid raw files (``ind.<name>.x`` ...) are Python 2 pickles. Unpickling runs code: any pickle can name
any importable callable (``os.system``, ``builtins.eval``, ``subprocess.Popen``) and have it called with its own
arguments. A downloaded file, or one from a mirror, is untrusted, so we resolve globals through an allow-list of
exactly the classes these files are made of, and refuse everything else *before* it is imported or called.

What the files contain (inspected with ``pickletools``): scipy CSR matrices (features), numpy arrays (one-hot
labels) and a ``collections.defaultdict(list)`` (adjacency lists). Their pickles name six globals, spelled the
Python 2 / numpy 1 way; we map them to today's objects without importing the deprecated modules
(``numpy.core`` warns under numpy 2, ``scipy.sparse.csr`` is deprecated).
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
from numpy._core.multiarray import _reconstruct, scalar

from gat.errors import GATError

# (module, name) as written in the pickle -> the object it stands for today. Nothing else resolves.
# None of these can run arbitrary code: they only build arrays, dtypes, CSR matrices, lists and dicts
# (a defaultdict's factory is itself a global, so it too can only be one of these).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    # A numpy scalar (dtype + raw bytes -> number). Cora and CiteSeer hold none; it is allowed because PubMed's
    # files could not be inspected here and numpy-typed numbers are common in such pickles.
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
    ("collections", "defaultdict"): collections.defaultdict,
    # Python 2's name for builtins; find_class sees it before fix_imports would rename it.
    ("__builtin__", "list"): list,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only `ALLOWED_GLOBALS`; any other global raises `GATError`."""

    def __init__(self, file: Any, source: str) -> None:
        # latin1 because the files were written by Python 2: their numpy buffers are byte strings that must
        # come back as bytes-like text, not be decoded as UTF-8.
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise GATError(
                f"safe_pickle refuses to load {module}.{name} from {self.source}: not allowed in a Planetoid "
                f"data file (only numpy arrays, scipy CSR matrices and dict/list adjacency are); the file is "
                f"corrupt or malicious - delete it and fetch it again from a trusted source"
            ) from None


def safe_load(path: str | Path) -> Any:
    """Unpickle ``path`` (a Python 2 pickle) allowing only the classes Planetoid data files use.

    Raises `GATError` if the pickle names anything else, or if it cannot be read at all (truncated, not a
    pickle): both mean the file must be replaced, which is the user's to fix.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            return RestrictedUnpickler(file, source=str(path)).load()
    except GATError:
        raise
    except Exception as error:  # any failure inside a broken pickle (EOFError, ValueError, ...) means the same
        reason = " ".join(str(error).split()) or type(error).__name__
        raise GATError(
            f"cannot unpickle {path}: {reason}; the file is corrupt - delete it and fetch it again"
        ) from error
