"""OpenID Connect sign-in (datenlabor.web.oidc) against a real local provider.

The provider (tests/fixtures/oidc_provider.py) and Datenlabor both run under uvicorn on
127.0.0.1; a plain httpx client plays the browser, following each redirect by hand and
keeping cookies, so every hop of the authorization code flow is visible.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

import datenlabor
from datenlabor.errors import BadInput
from datenlabor.pool.pool import Pool
from datenlabor.web import oidc
from datenlabor.web.app import create_app
from datenlabor.web.auth import SESSION_COOKIE
from fixtures.oidc_provider import Provider, ProviderUser, running_provider, s256, serve


@dataclass
class Site:
    url: str
    pool: Pool
    app: Any

    @property
    def gate(self) -> Any:
        return self.app.state.gate

    def audit(self, action: str) -> list[Any]:
        return self.gate.audit.entries(action=action)


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider() as p:
        yield p


@pytest.fixture
def idp(provider: Provider) -> Iterator[Provider]:
    provider.reset()
    yield provider
    provider.reset()


class Socket:
    """An ASGI app that passes requests on to whichever app a test plugged in.

    Two uvicorn servers serve the whole module; each test plugs in fresh apps, which
    saves starting and stopping a server per test.
    """

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "no app plugged in"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def sockets() -> Iterator[list[tuple[Socket, int]]]:
    first, second = Socket(), Socket()
    with serve(first) as port1, serve(second) as port2:
        yield [(first, port1), (second, port2)]


@pytest.fixture
def start_site(
    tmp_path: Path, idp: Provider, sockets: list[tuple[Socket, int]]
) -> Iterator[Callable[..., Site]]:
    pools: list[Pool] = []

    def start(**settings: Any) -> Site:
        options: dict[str, Any] = {
            "oidc_issuer": idp.issuer,
            "oidc_client_id": idp.client_id,
            "oidc_client_secret": idp.client_secret,
            "user": "test@example.org",
        }
        options.update(settings)
        pool = datenlabor.open(tmp_path / f"pool{len(pools)}", **options)
        app = create_app(pool)
        app.state.gate.accounts.add_org("bmi", "Bundesministerium des Innern")
        socket, port = sockets[len(pools)]
        socket.app = app
        pools.append(pool)
        return Site(f"http://127.0.0.1:{port}", pool, app)

    yield start
    for socket, _port in sockets:
        socket.app = None
    for pool in pools:
        pool.store.dispose()


@pytest.fixture
def site(start_site: Callable[..., Site]) -> Site:
    return start_site()


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=20) as client:
        yield client


def subject_of(idp: Provider, user: ProviderUser | None = None) -> str:
    return f"{idp.issuer}|{(user or idp.user).sub}"


def add_linked_user(site: Site, idp: Provider, username: str = "erika") -> None:
    site.gate.accounts.add_user(
        username, org="bmi", role="analyst", oidc_subject=subject_of(idp), password=None
    )


def to_provider(browser: httpx.Client, site: Site, next: str = "/datasets") -> httpx.Response:
    """Start the sign-in; the answer of the provider's authorization endpoint."""
    start = browser.get(f"{site.url}/auth/oidc/login", params={"next": next})
    assert start.status_code == 302, start.text
    assert start.headers["cache-control"] == "no-store"
    answer = browser.get(start.headers["location"])
    assert answer.status_code == 302, answer.text
    return answer


def sign_in(browser: httpx.Client, site: Site, next: str = "/datasets") -> httpx.Response:
    """The whole flow; the answer of Datenlabor's callback."""
    back = to_provider(browser, site, next)
    location = back.headers["location"]
    assert location.startswith(f"{site.url}/auth/oidc/callback?")
    return browser.get(location)


def me(browser: httpx.Client, site: Site) -> dict[str, Any]:
    r = browser.get(f"{site.url}/api/v1/me")
    assert r.status_code == 200, r.text
    return dict(r.json())


def last_failure(site: Site) -> dict[str, Any]:
    entries = site.audit("login-failed")
    assert entries, "the failed sign-in is not in the audit log"
    assert entries[0].actor == "anonymous"
    assert entries[0].outcome == "failed"
    detail = dict(entries[0].detail)
    assert detail["method"] == "oidc"
    return detail


# -- the good path -------------------------------------------------------------------------
def test_full_flow_signs_in_a_linked_user(site: Site, idp: Provider, browser: httpx.Client) -> None:
    add_linked_user(site, idp)

    start = browser.get(f"{site.url}/auth/oidc/login", params={"next": "/datasets?q=Bevölkerung"})
    assert start.status_code == 302
    url = urlsplit(start.headers["location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{idp.issuer}/protocol/openid-connect/auth"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == idp.client_id
    assert q["scope"] == "openid profile email"
    assert q["redirect_uri"] == f"{site.url}/auth/oidc/callback"
    assert q["code_challenge_method"] == "S256"
    assert len(q["state"]) >= 20 and len(q["nonce"]) >= 20
    assert start.cookies.get(oidc.PENDING_COOKIE)
    set_cookie = start.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "path=/auth/oidc" in set_cookie
    assert "samesite=lax" in set_cookie

    back = browser.get(start.headers["location"])
    done = browser.get(back.headers["location"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/datasets?q=Bev%C3%B6lkerung"
    assert done.cookies.get(SESSION_COOKIE)
    assert oidc.PENDING_COOKIE not in browser.cookies  # one sign-in, one use

    assert me(browser, site) == {
        "username": "erika",
        "role": "analyst",
        "organisation": "bmi",
        "authenticated": True,
        "via": "session",
    }
    # The token request: client_secret_basic (announced first), PKCE verifier matching.
    (req,) = idp.token_requests
    assert req["auth_method"] == "client_secret_basic"
    assert "client_secret" not in req["form"]
    assert s256(req["form"]["code_verifier"]) == q["code_challenge"]
    assert req["form"]["redirect_uri"] == q["redirect_uri"]

    (entry,) = site.audit("login")
    assert entry.actor == "erika"
    assert entry.organisation == "bmi"
    assert entry.detail == {"method": "oidc", "issuer": idp.issuer}
    assert entry.client == "127.0.0.1"
    assert site.audit("login-failed") == []


def test_client_secret_post_when_the_provider_only_offers_that(
    site: Site, idp: Provider, browser: httpx.Client
) -> None:
    add_linked_user(site, idp)
    idp.auth_methods = ("client_secret_post", "private_key_jwt")
    assert sign_in(browser, site).status_code == 303
    (req,) = idp.token_requests
    assert req["auth_method"] == "client_secret_post"
    assert req["form"]["client_secret"] == idp.client_secret
    assert me(browser, site)["username"] == "erika"


def test_next_is_only_ever_a_local_path(site: Site, idp: Provider, browser: httpx.Client) -> None:
    add_linked_user(site, idp)
    done = sign_in(browser, site, next="//evil.example/phish")
    assert done.status_code == 303
    assert done.headers["location"] == "/"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "evil", "", None):
        assert oidc.safe_next(bad) == "/"
    assert oidc.safe_next("/datasets/x?v=2") == "/datasets/x?v=2"
    assert oidc.login_path("/a b") == "/auth/oidc/login?next=%2Fa+b"
    assert oidc.login_path("//x") == "/auth/oidc/login?next=%2F"


def test_first_sign_in_creates_an_account_in_the_default_org(
    start_site: Callable[..., Site], idp: Provider
) -> None:
    site = start_site(oidc_default_org="bmi", oidc_default_role="viewer")
    # Someone has the name already: the new account gets the next free one.
    site.gate.accounts.add_user("erika.mustermann", org="bmi", role="admin", password=None)
    with httpx.Client(timeout=20) as browser:
        assert sign_in(browser, site).status_code == 303
        assert me(browser, site)["username"] == "erika.mustermann-2"
    info = site.gate.accounts.user("erika.mustermann-2")
    assert (info.role, info.organisation, info.sso) == ("viewer", "bmi", True)
    assert info.display_name == "Erika Mustermann"
    assert info.email == "erika.mustermann@bmi.bund.de"
    (created,) = site.audit("account")
    assert created.actor == "erika.mustermann-2"
    assert created.detail["via"] == "oidc"
    assert created.detail["subject"] == subject_of(idp)

    # Signing in again finds the account by its subject; nothing new is made.
    with httpx.Client(timeout=20) as browser:
        assert sign_in(browser, site).status_code == 303
        assert me(browser, site)["username"] == "erika.mustermann-2"
    assert len(site.audit("account")) == 1
    assert len(site.audit("login")) == 2

    # A name with characters user names may not have is made valid.
    idp.user = ProviderUser(sub="other-sub", preferred_username="max mustermann (BSI)")
    with httpx.Client(timeout=20) as browser:
        assert sign_in(browser, site).status_code == 303
        assert me(browser, site)["username"] == "max-mustermann-BSI"


def test_unknown_identity_without_default_org_is_refused(
    site: Site, idp: Provider, browser: httpx.Client
) -> None:
    done = sign_in(browser, site)
    assert done.status_code == 403
    assert "not registered" in done.text
    assert "datenlabor users add erika.mustermann --org ORG --role ROLE" in done.text
    assert subject_of(idp) in done.text
    assert "--no-password" in done.text
    assert SESSION_COOKIE not in browser.cookies
    assert me(browser, site)["authenticated"] is False
    detail = last_failure(site)
    assert detail["reason"] == "not-registered"
    assert detail["subject"] == subject_of(idp)
    assert detail["issuer"] == idp.issuer


def test_deactivated_account_is_refused(site: Site, idp: Provider, browser: httpx.Client) -> None:
    add_linked_user(site, idp)
    site.gate.accounts.update_user("erika", active=False)
    done = sign_in(browser, site)
    assert done.status_code == 403
    assert "deactivated" in done.text
    assert last_failure(site)["reason"] == "inactive"


# -- what must fail ------------------------------------------------------------------------
def test_provider_error_access_denied(site: Site, idp: Provider, browser: httpx.Client) -> None:
    add_linked_user(site, idp)
    idp.error = "access_denied"
    done = sign_in(browser, site)
    assert done.status_code == 401
    assert "access_denied" in done.text
    assert "The user denied access" in done.text
    assert "location" not in done.headers  # an answer, not a loop back to the sign-in page
    assert SESSION_COOKIE not in browser.cookies
    detail = last_failure(site)
    assert (detail["reason"], detail["error"]) == ("provider-error", "access_denied")
    assert idp.token_requests == []


def test_crafted_error_links_show_no_foreign_text(site: Site, browser: httpx.Client) -> None:
    r = browser.get(
        f"{site.url}/auth/oidc/callback",
        params={"error": "access_denied", "error_description": "Call +49 30 1234", "state": "x"},
    )
    assert r.status_code == 401
    assert "access_denied" in r.text
    assert "Call +49" not in r.text
    r = browser.get(f"{site.url}/auth/oidc/callback", params={"error": "Your account is locked"})
    assert r.status_code == 400
    assert "Your account is locked" not in r.text and "unknown_error" in r.text
    # A state that is not ASCII is an ordinary mismatch, not a crash.
    r = browser.get(f"{site.url}/auth/oidc/callback", params={"code": "c", "state": "zuständig"})
    assert r.status_code == 400


def test_wrong_state_is_refused(site: Site, idp: Provider, browser: httpx.Client) -> None:
    add_linked_user(site, idp)
    back = to_provider(browser, site)
    url = urlsplit(back.headers["location"])
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    q["state"] = "forged-" + q["state"]
    done = browser.get(f"{site.url}{url.path}?{urlencode(q)}")
    assert done.status_code == 400
    assert "state mismatch" in done.text
    assert idp.token_requests == []  # the code was never redeemed
    assert last_failure(site)["reason"] == "state-mismatch"
    assert SESSION_COOKIE not in browser.cookies


def test_callback_without_a_started_sign_in(site: Site, browser: httpx.Client) -> None:
    done = browser.get(f"{site.url}/auth/oidc/callback", params={"code": "x", "state": "y"})
    assert done.status_code == 400
    assert "no sign-in was started" in done.text
    assert last_failure(site)["reason"] == "no-pending-login"
    missing = browser.get(f"{site.url}/auth/oidc/callback")
    assert missing.status_code == 400


def test_tampered_pending_cookie(site: Site, idp: Provider, browser: httpx.Client) -> None:
    back = to_provider(browser, site)
    value = browser.cookies[oidc.PENDING_COOKIE]
    browser.cookies.clear()
    browser.cookies.set(oidc.PENDING_COOKIE, value[:-2] + "xx", path="/auth/oidc")
    done = browser.get(back.headers["location"])
    assert done.status_code == 400
    assert last_failure(site)["reason"] == "bad-pending-login"


def test_replayed_callback_is_refused(site: Site, idp: Provider, browser: httpx.Client) -> None:
    add_linked_user(site, idp)
    back = to_provider(browser, site)
    pending = browser.cookies[oidc.PENDING_COOKIE]
    callback = back.headers["location"]
    assert browser.get(callback).status_code == 303

    # The same answer again, with the pending-login cookie an attacker may have copied:
    # the provider does not redeem a code twice.
    with httpx.Client(timeout=20) as other:
        other.cookies.set(oidc.PENDING_COOKIE, pending, path="/auth/oidc")
        again = other.get(callback)
    assert again.status_code == 401
    assert "invalid_grant" in again.text
    assert last_failure(site)["reason"] == "token-refused"
    # Without that cookie (the browser dropped it after use) it stops earlier.
    assert browser.get(callback).status_code == 400
    assert len(site.audit("login")) == 1


def test_expired_pending_login(
    site: Site, idp: Provider, browser: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_linked_user(site, idp)
    back = to_provider(browser, site)
    monkeypatch.setattr(oidc, "PENDING_SECONDS", -1)  # "ten minutes later"
    done = browser.get(back.headers["location"])
    assert done.status_code == 400
    assert "took longer than" in done.text
    assert last_failure(site)["reason"] == "pending-login-expired"
    assert idp.token_requests == []


@pytest.mark.parametrize(
    ("misbehave", "claim"),
    [
        ({"sign_with_rogue_key": True}, "bad_signature"),
        ({"sign_with_rogue_key": True, "rogue_kid": "not-published"}, "invalid_key_id"),
        ({"audience": "another-client"}, "aud"),
        ({"token_issuer": "https://evil.example/realms/behoerde"}, "iss"),
        ({"nonce_override": "not-the-nonce-we-sent"}, "nonce"),
        ({"id_token_lifetime": -600}, "expired_token"),
    ],
    ids=["signature", "unknown-key", "audience", "issuer", "nonce", "expired"],
)
def test_invalid_id_token_is_refused(
    site: Site, idp: Provider, browser: httpx.Client, misbehave: dict[str, Any], claim: str
) -> None:
    add_linked_user(site, idp)
    for name, value in misbehave.items():
        setattr(idp, name, value)
    done = sign_in(browser, site)
    assert done.status_code == 401, done.text
    assert "ID token" in done.text
    assert claim in done.text
    assert SESSION_COOKIE not in browser.cookies
    assert me(browser, site)["authenticated"] is False
    detail = last_failure(site)
    assert detail["reason"] == "invalid-id-token"
    assert detail["error"] in ("bad_signature", "invalid_key_id", "invalid_claim", "expired_token")
    assert site.audit("login") == []


def test_provider_key_rotation_is_followed(
    site: Site, idp: Provider, browser: httpx.Client
) -> None:
    add_linked_user(site, idp)
    assert sign_in(browser, site).status_code == 303  # the JWKS is cached now
    idp.rotate_key()
    browser.cookies.clear()
    assert sign_in(browser, site).status_code == 303  # unknown key id: fetched again
    assert me(browser, site)["username"] == "erika"


def test_wrong_client_secret_is_refused(
    start_site: Callable[..., Site], idp: Provider, browser: httpx.Client
) -> None:
    site = start_site(oidc_client_secret="falsch")
    add_linked_user(site, idp)
    done = sign_in(browser, site)
    assert done.status_code == 401
    assert "unauthorized_client" in done.text
    assert last_failure(site)["reason"] == "token-refused"


def test_json_answers_for_api_clients(site: Site, idp: Provider) -> None:
    """A 401 the UI would turn into "please sign in" is a problem document for JSON clients."""
    with httpx.Client(timeout=20, headers={"Accept": "application/json"}) as client:
        idp.error = "access_denied"
        done = sign_in(client, site)
    assert done.status_code == 401
    body = done.json()
    assert body["status"] == 401
    assert "access_denied" in body["error"]


def test_unreachable_provider_is_a_clear_502(
    start_site: Callable[..., Site], browser: httpx.Client
) -> None:
    from fixtures.oidc_provider import free_port

    site = start_site(oidc_issuer=f"http://127.0.0.1:{free_port()}/realms/nowhere")
    r = browser.get(f"{site.url}/auth/oidc/login")
    assert r.status_code == 502
    assert "cannot be reached" in r.text


def test_issuer_must_match_the_discovery_document(
    start_site: Callable[..., Site], idp: Provider, browser: httpx.Client
) -> None:
    site = start_site(oidc_issuer=idp.issuer + "/")
    assert to_provider(browser, site).status_code == 302  # a trailing slash is tolerated
    # A discovery document (served under another path) that names another issuer.
    other = start_site(oidc_issuer=f"{idp.base}/realms/{idp.realm}-alias")
    r = browser.get(f"{other.url}/auth/oidc/login")
    assert r.status_code == 502
    assert "check the setting oidc_issuer" in r.text


# -- set-up --------------------------------------------------------------------------------
def test_install_does_nothing_without_an_issuer(tmp_path: Path) -> None:
    pool = datenlabor.open(tmp_path / "pool", user="test@example.org")
    try:
        app = create_app(pool)
        before = len(app.routes)
        oidc.install(app)
        assert len(app.routes) == before
        assert not oidc.enabled(app)
        assert not (pool.root / "secrets" / "oidc.key").exists()
    finally:
        pool.store.dispose()


def test_install_needs_a_client_id(tmp_path: Path) -> None:
    pool = datenlabor.open(tmp_path / "pool", user="t", oidc_issuer="http://127.0.0.1:1/x")
    try:
        with pytest.raises(BadInput, match="oidc_client_id"):
            oidc.install(create_app(pool))
    finally:
        pool.store.dispose()


def test_pending_login_key_is_private_and_kept(site: Site) -> None:
    path = site.pool.root / "secrets" / "oidc.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key = oidc.pending_key(site.pool.root)
    assert key == path.read_bytes().strip() and len(key) >= 32
    assert oidc.enabled(site.app)
    assert [p.name for p in path.parent.iterdir()] == ["oidc.key"]  # no temporary leftovers
    assert os.access(path, os.R_OK)
