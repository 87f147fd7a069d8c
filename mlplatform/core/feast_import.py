"""Feast, imported without typeguard's run-time instrumentation of its classes: import this module before ``feast``
(or take ``feast`` from it).

Feast decorates its entity, feature view, feature service and data source classes with ``typeguard.typechecked``.
At import, the decorator re-reads each decorated method's module from source, parses it, rewrites it with type
checks and compiles it again: 261 rewrites of 14 modules, about half of what ``import feast`` costs (6.0-6.4 s of
CPU against 3.2-3.4 s without the rewrites, measured 7 Dec 2026 on the 2-core development machine with
``/usr/bin/time python -c "import feast"``). Every process that touches the feature store pays it again: each
monitoring and retraining run the daemon starts, the serving app, the CLI, a test worker.

typeguard itself makes the decorator a no-op when Python runs optimised (``-O``) and says its checks are not meant
for production. This module gives Feast that behaviour and leaves every other use of typeguard alone: the decorator is
an identity function only while Feast's package loads, then the real one again. What is given up: Feast's own run-time
checks of the argument types its constructors receive. The platform's calls into Feast are checked statically by
mypy and by the feature-store tests, which build and read real Feast stores.

Feast also imports torch when it loads (``feast.torch_wrapper``, for ``OnlineResponse.to_tensor`` and the RAG
retriever, neither of which the platform calls): about 1.5 s of CPU and 185 MB of memory in every process that
touches the feature store, the serving app of a LightGBM champion included. This module puts a stand-in for that
module in place first, whose ``get_torch`` imports torch when called. ``import mlplatform.core.feature_store`` took
3.1-3.5 s of CPU and 454 MB before, 1.8 s and 269 MB after (``/usr/bin/time``, two runs each, 8 Dec 2026).
"""

import importlib
import sys
from types import ModuleType
from typing import Any

import typeguard


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``typechecked``'s signature, returning what it decorates unchanged (used bare or with options)."""
    return _unchecked if target is None else target


def _lazy_torch_wrapper() -> ModuleType:
    """``feast.torch_wrapper`` with its one function used by Feast, ``get_torch``, importing torch on its first call
    (an ImportError says torch is not installed) instead of when Feast loads."""
    module = ModuleType("feast.torch_wrapper", "torch for Feast, imported when first asked for")
    module.get_torch = lambda: importlib.import_module("torch")  # type: ignore[attr-defined]
    return module


sys.modules.setdefault("feast.torch_wrapper", _lazy_torch_wrapper())  # the real one stays if Feast loaded already
_typechecked = typeguard.typechecked
typeguard.typechecked = _unchecked
try:
    import feast
finally:
    typeguard.typechecked = _typechecked

__all__ = ["feast"]
