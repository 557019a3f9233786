"""Names a package exports but imports only on first use (PEP 562).

`import keras_nmt` (and its subpackages) imports neither Keras nor
TensorFlow: the command line answers `--help` and argument errors in a
fraction of a second, and a layer user pays only for what they touch.
"""

from __future__ import annotations

import importlib


def attach(package: str, exports: dict[str, str], submodules=()):
    """`(__getattr__, __dir__)` for the package named `package`.

    Args:
        package: the package's `__name__`.
        exports: public name -> the module (absolute name) that defines it.
        submodules: names of subpackages/modules reachable as attributes.
    """

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}"
            )
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__():
        names = importlib.import_module(package).__dict__
        return sorted({*names, *exports, *submodules})

    return __getattr__, __dir__
