"""The one way input pickles are read: an unpickler that builds only data, never runs code.

A pickle names the callables that rebuild its objects, and ``pickle.load`` calls any
of them (a crafted ``__reduce__`` runs ``os.system``). :class:`DataUnpickler` admits
only the few numpy rebuilders of arrays, dtypes and scalars and ``_codecs.encode``
(how protocol 2 stores bytes); builtin containers, numbers and strings need no
callable. That is all the SymGNN, DeepMind and simulate.py pickles hold.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

#: (module, name) pairs a pickle may use; numpy >= 2 moved ``numpy.core`` to ``numpy._core``.
ALLOWED = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        *(
            (f"numpy.{core}.{module}", name)
            for core in ("core", "_core")
            for module, name in (
                ("multiarray", "_reconstruct"),
                ("multiarray", "scalar"),
                ("numeric", "_frombuffer"),
            )
        ),
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a callable outside :data:`ALLOWED`; nothing of it was run."""


class DataUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the globals of :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"refused to load {module}.{name}: only numpy arrays, dtypes, scalars and builtin "
                "containers are read from pickles (this one could run code)"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refused to load a persistent id: not a plain data pickle")


def load_data_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`DataUnpickler`."""
    with open(path, "rb") as handle:
        return DataUnpickler(handle).load()
