"""What every fuzz target shares: the contract, seeds from real files, the atheris entry.

The contract of a reader under hostile input: it returns, or it raises one of the project's
documented bad-input errors (:class:`datenlabor.errors.BadInput`). Any other exception is a
finding; libFuzzer's ``-timeout`` catches hangs and ``-rss_limit_mb`` unbounded memory (both
are set by ``fuzz/run.py``).

A target module defines ``TARGET``, ``INSTRUMENT`` (packages whose branches guide the fuzzer),
``MAX_LEN``, ``seeds()`` and ``one_input(data)``, and ends with ``harness.main(__name__)``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED = Path(os.environ.get("DATENLABOR_SHARED_DATA", REPO.parent / "shared" / "data"))

Seed = tuple[str, bytes]


def files(*patterns: str, limit: int = 256 * 1024) -> Iterator[Seed]:
    """Seeds from real files: ``shared:`` paths under the shared data, others under
    tests/fixtures. Files larger than ``limit`` contribute their first ``limit`` bytes."""
    for pattern in patterns:
        base, _, glob = pattern.rpartition(":")
        root = SHARED if base == "shared" else FIXTURES
        for path in sorted(root.glob(glob)):
            if path.is_file():
                with path.open("rb") as fh:
                    yield path.name, fh.read(limit)


def regressions(target: str) -> Iterator[Seed]:
    """Inputs that once broke the target (tests/fixtures/fuzz/TARGET/): always in the corpus."""
    yield from files(f"fuzz/{target}/*")


def scratch() -> Path:
    """A private folder for the files a reader needs on disk (one per fuzzing process)."""
    return Path(tempfile.mkdtemp(prefix="datenlabor-fuzz-"))


def allowed_errors() -> tuple[type[BaseException], ...]:
    from datenlabor.errors import BadInput

    return (BadInput,)


def checked(one_input: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """``one_input`` with the contract applied: documented errors are fine, others escape."""
    allowed = allowed_errors()

    def run(data: bytes) -> None:
        with contextlib.suppress(allowed):
            one_input(data)

    return run


def load(target: str):
    return importlib.import_module(f"fuzz_{target}")


_EXIT_HOOK: object = None  # keeps the C callback alive until the process ends


def _leave_at_c_exit() -> None:
    """End the process at C ``exit()`` before the shared libraries' own exit handlers run.

    When libFuzzer finishes (``-runs`` or ``-max_total_time``) it prints its final stats and
    calls C ``exit(0)`` from inside ``atheris.Fuzz()``, without finalising Python. ``exit``
    then runs the C++ static destructors of DuckDB and Arrow while their worker threads are
    still alive; now and then that corrupts the heap ("corrupted double-linked list") and the
    run ends in a signal after all inputs passed. C ``atexit`` handlers run in the reverse
    order of registration, so one registered after those libraries were loaded runs first:
    it flushes Python's streams and leaves with ``os._exit`` and the status ``exit`` was
    given. A crash found by libFuzzer leaves through ``_Exit`` and never reaches it.
    """
    import ctypes

    global _EXIT_HOOK

    @ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
    def leave(status: int, _arg: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    _EXIT_HOOK = leave
    # glibc's on_exit() passes the exit status to the handler (atexit() handlers do not get
    # it, and glibc exports no atexit symbol anyway); fuzzing runs on Linux only
    if ctypes.CDLL(None).on_exit(leave, None) != 0:
        raise RuntimeError("could not register the exit handler")


def main(module_name: str) -> None:
    """Entry of ``python fuzz/fuzz_X.py [libFuzzer args] CORPUS…``: instrument, then fuzz."""
    import atheris

    module = sys.modules[module_name]
    with atheris.instrument_imports(include=list(module.INSTRUMENT)):
        module.prepare()
    _leave_at_c_exit()  # after prepare(): DuckDB and Arrow are loaded by now
    atheris.Setup(sys.argv, checked(module.one_input))
    atheris.Fuzz()
