import subprocess
import sys

from django.conf import settings


def test_engine_imports_without_django():
    code = (
        "import sys, composition.engine, composition.engine.base_models\n"
        "leaked = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
