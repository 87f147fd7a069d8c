"""The cost report's /predict timing builds its in-process client without warnings on the user's terminal."""

import subprocess
import sys

# Run in a fresh interpreter: starlette warns once, when starlette.testclient is first imported.
_IMPORT_WITH_WARNINGS_AS_ERRORS = """
import warnings
from starlette.exceptions import StarletteDeprecationWarning
warnings.filterwarnings("error", category=StarletteDeprecationWarning)
{code}
"""


def _runs_cleanly(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _IMPORT_WITH_WARNINGS_AS_ERRORS.format(code=code)],
                          capture_output=True, text=True, timeout=120)


def test_starlette_warns_when_its_test_client_is_imported_plainly():
    """The premise: a plain import raises starlette's deprecation notice where httpx2 is missing (it falls back to
    httpx); httpx2 now comes with the pinned set, so the test hides it."""
    plain = _runs_cleanly("import sys\nsys.modules['httpx2'] = None\nimport fastapi.testclient")
    assert plain.returncode != 0 and "Using `httpx` with `starlette.testclient` is deprecated" in plain.stderr


def test_the_timing_client_is_imported_without_the_notice_and_works():
    done = _runs_cleanly(
        "from fastapi import FastAPI\n"
        "from mlplatform.serving.timing import in_process_client_class\n"
        "app = FastAPI()\n"
        "app.get('/ping')(lambda: {'ok': True})\n"
        "with in_process_client_class()(app) as client:\n"
        "    assert client.get('/ping').json() == {'ok': True}\n")
    assert done.returncode == 0, done.stderr
    assert "httpx" not in done.stderr
