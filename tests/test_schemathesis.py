"""Property-based API testing with schemathesis, against the app's own OpenAPI document.

Every operation of ``/openapi.json`` is called with generated input (valid and invalid) for
each role — admin, the publisher's steward, an analyst and a viewer of another authority
(bearer tokens), and anonymous — over the world of the authorisation matrix (public,
internal, restricted, grant-narrowed and confidential datasets, a knowledge base, an assist
inbox with an answer draft, a dashboard, governance entries). Checks: schemathesis' default
checks, among them no 5xx, status codes the document declares, declared content types,
response bodies and headers that conform to the declared schemas.

``DATENLABOR_SCHEMATHESIS_EXAMPLES`` sets the examples per operation and role (default 4,
about a minute under ``-n 2``); the slow variant (``DATENLABOR_SLOW_TESTS=1``) uses 60.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from test_authz_matrix import World, build_world

EXAMPLES = int(os.environ.get("DATENLABOR_SCHEMATHESIS_EXAMPLES", "4"))
SLOW_EXAMPLES = 60
ROLES = ("anonymous", "viewer", "analyst", "steward-pub", "admin")


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("schemathesis"))
    yield w
    w.client.close()
    w.app.state.pool.store.dispose()


@pytest.fixture(scope="module")
def api_schema(api_world: World) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", api_world.app)


# positive_data_acceptance expects every schema-valid request to succeed; the document cannot
# express every rule (a SQL text must be one SELECT over visible datasets, an upload a
# readable file, a CKAN action one of its names), so those answer 400 by design. Every other
# default check runs: no 5xx, documented status codes, content types, bodies and headers.
EXCLUDED: list[Any] = [positive_data_acceptance]


def _call(case: Any, world: World, role: str) -> None:
    # The roles' own tokens stay valid: revoking them would turn every later call of that
    # role into an anonymous one (revocation itself is tested in test_api.py).
    own_token = (case.path_parameters or {}).get("token_id") in range(0, 100)
    if case.method == "DELETE" and case.path == "/api/v1/tokens/{token_id}" and own_token:
        case.path_parameters["token_id"] = 1_000_000
    # a generous timeout: on a busy 2-core machine a triage call can take seconds
    case.call_and_validate(headers=world.headers(role), excluded_checks=EXCLUDED, timeout=60)


def run_operations(schema: Any, world: World, role: str, examples: int) -> list[str]:
    """Every operation with ``examples`` generated cases; the failures, one line each."""
    from hypothesis import given

    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, **SETTINGS)
        def run(case: Any) -> None:
            _call(case, world, role)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect, go on with the next one
            inner = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
            lines = [*str(exc).strip().splitlines()[:6], *str(inner).strip().splitlines()[:12]]
            failures.append(f"{operation.method.upper()} {operation.path}: {' | '.join(lines)}")
    return failures


SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "phases": [Phase.explicit, Phase.generate],
    "derandomize": True,  # the same examples on every run: failures are reproducible
    "database": None,
}


@pytest.mark.parametrize("role", ROLES)
def test_api_conforms(role: str, api_world: World, api_schema: Any) -> None:
    failures = run_operations(api_schema, api_world, role, EXAMPLES)
    assert not failures, f"{len(failures)} operations fail for {role}:\n" + "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_api_conforms_long(role: str, api_world: World, api_schema: Any) -> None:
    failures = run_operations(api_schema, api_world, role, SLOW_EXAMPLES)
    assert not failures, f"{len(failures)} operations fail for {role}:\n" + "\n".join(failures)
