"""The tutorial notebooks: each runs top to bottom, and each is committed
executed, without errors, using only the public API.

Every `notebooks/*.ipynb` is picked up (new notebooks need no change here).
The notebooks are executed in quick mode (`KERAS_NMT_NOTEBOOK_QUICK=1`:
fewer examples and epochs) on the TensorFlow backend, on an in-memory copy:
the committed files, with the outputs of a full run, are never rewritten.
"""

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))

# The kernel inherits the test process's environment when it starts.
KERNEL_ENV = {
    "KERAS_NMT_NOTEBOOK_QUICK": "1",
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MPLBACKEND": "Agg",
}

# What a notebook may import from this package: the package and its public
# subpackages (each with an `__all__`).
PUBLIC_PACKAGE_MODULES = {
    "keras_nmt",
    "keras_nmt.layers",
    "keras_nmt.seq2seq",
    "keras_nmt.decoding",
    "keras_nmt.text",
}
PRIVATE_ATTRIBUTE = re.compile(
    r"\bkeras\.src\b"
    r"|\btensorflow\.python\b"
    r"|\bkeras_nmt(?:\.[A-Za-z]\w*)*\._(?!_)"
)


def _execute(nb):
    """Executes `nb` in place in a `python3` kernel started in notebooks/."""
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()
    return nb


def _code_cells(nb):
    return [
        cell
        for cell in nb.cells
        if cell.cell_type == "code" and cell.source.strip()
    ]


def _private_uses(source):
    """The private or non-public modules and names a code cell uses."""
    # IPython syntax (%magics, !commands) becomes plain Python first.
    tree = ast.parse(TransformerManager().transform_cell(source))
    found = [m.group(0) for m in PRIVATE_ATTRIBUTE.finditer(source)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names = []
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            names = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if module.startswith("keras_nmt"):
                if module not in PUBLIC_PACKAGE_MODULES:
                    found.append(f"import of {module}")
                found.extend(
                    f"import of {module}.{name}"
                    for name in names
                    if name.startswith("_") and not name.startswith("__")
                )
            elif parts[:2] in (["keras", "src"], ["tensorflow", "python"]):
                found.append(f"import of {module}")
    return found


@pytest.fixture
def kernel_env(monkeypatch):
    """Sets the kernel's environment; monkeypatch restores it afterwards."""
    for name, value in KERNEL_ENV.items():
        monkeypatch.setenv(name, value)


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOKS_DIR}"


def test_kernel_runs_this_python(kernel_env):
    # The `python3` kernelspec must start this interpreter (and so see this
    # environment's packages), not some other Python on the machine.
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import os, sys\n"
                "print(sys.prefix)\n"
                "print(os.environ['KERAS_NMT_NOTEBOOK_QUICK'])"
            )
        ]
    )
    output = _execute(nb).cells[0].outputs[0]["text"].split()
    assert output == [sys.prefix, "1"], (
        f"The 'python3' Jupyter kernel runs {output[0]}, not this test's "
        f"Python {sys.prefix}. Install this environment's kernel with "
        "`python -m ipykernel install --sys-prefix`, or remove the other "
        "'python3' kernelspec (`jupyter kernelspec list`)."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_env):
    nb = nbformat.read(path, as_version=4)  # a copy, in memory
    _execute(nb)  # raises CellExecutionError, with the cell, on any error


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_was_executed(path):
    nb = nbformat.read(path, as_version=4)
    cells = _code_cells(nb)
    counts = [cell.execution_count for cell in cells]
    assert None not in counts, (
        f"{path.name}: {counts.count(None)} code cells have no outputs. "
        "Commit the notebook executed top to bottom (full mode)."
    )
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts {counts}: not run once, top to "
        "bottom, in a fresh kernel."
    )
    errors = [
        f"cell {counts[i]}: {output.get('ename')}: {output.get('evalue')}"
        for i, cell in enumerate(cells)
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name} was committed with errors: {errors}"
    assert any(cell.outputs for cell in cells), f"{path.name} has no outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(path):
    nb = nbformat.read(path, as_version=4)
    private = {
        f"cell {i}: {use}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for use in _private_uses(cell.source)
    }
    assert not private, (
        f"{path.name} uses non-public modules or names: {sorted(private)}. "
        f"Use {sorted(PUBLIC_PACKAGE_MODULES)}, keras and keras.ops."
    )


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import keras\nfrom keras import ops", []),
        ("from keras_nmt import BahdanauAttention", []),
        ("import keras_nmt.text\nkeras_nmt.__version__", []),
        ("%matplotlib inline\nimport numpy as np", []),
        ("from keras.src import ops", ["keras.src", "import of keras.src"]),
        (
            "from keras_nmt.decoding._loop import run",
            [
                "keras_nmt.decoding._",
                "import of keras_nmt.decoding._loop",
            ],
        ),
        (
            "from keras_nmt.layers import _helper",
            ["import of keras_nmt.layers._helper"],
        ),
        (
            "import keras_nmt.seq2seq.model",
            ["import of keras_nmt.seq2seq.model"],
        ),
        ("x = keras_nmt.layers._MASK", ["keras_nmt.layers._"]),
    ],
)
def test_private_use_check(source, expected):
    assert _private_uses(source) == expected
