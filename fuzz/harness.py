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


def main(module_name: str) -> None:
    """Entry of ``python fuzz/fuzz_X.py [libFuzzer args] CORPUS…``: instrument, then fuzz."""
    import atheris

    module = sys.modules[module_name]
    with atheris.instrument_imports(include=list(module.INSTRUMENT)):
        module.prepare()
    atheris.Setup(sys.argv, checked(module.one_input))
    atheris.Fuzz()
