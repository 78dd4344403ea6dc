"""Fail early, with a clear message, on a Python older than the service needs."""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 (runs before the venv exists, on any Python)
    sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
