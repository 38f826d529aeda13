"""Sign-in through OpenID Connect (authorization code flow with PKCE), e.g. with Keycloak.

``install(app)`` adds two routes when the setting ``oidc_issuer`` is set:

``GET /auth/oidc/login?next=/path``
    Sends the browser to the provider's authorization endpoint (found through
    ``{issuer}/.well-known/openid-configuration``) with ``state``, ``nonce`` and a PKCE
    ``S256`` challenge. These values, the redirect URI and the local ``next`` path are kept
    in a short-lived, signed, HttpOnly cookie (``dl_oidc``, path ``/auth/oidc``), so any
    worker process can finish the sign-in.

``GET /auth/oidc/callback``
    Checks the ``state`` against that cookie, exchanges the code at the token endpoint
    (client authentication ``client_secret_basic`` or ``client_secret_post`` as the
    provider announces), validates the ID token (signature against the provider's JWKS,
    ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``, ``azp``, ``at_hash``) and signs in the
    account linked to ``"{iss}|{sub}"``. Unknown identities get an account in
    ``oidc_default_org`` if that is set, otherwise a 403 that tells the admin how to add
    them. Every outcome is in the audit log (``login`` or ``login-failed``).

The cookie is signed (not encrypted) with a key kept in ``<pool>/secrets/oidc.key``; it
holds no secret of the provider (the PKCE verifier is useless without the one-time code,
which goes to this server only).

Behind a TLS-terminating reverse proxy, run uvicorn with ``--proxy-headers`` (and
``--forwarded-allow-ips``) so the redirect URI sent to the provider starts with
``https://`` and matches the one registered there.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import authlib.deprecate  # noqa: F401  (registers Authlib's warning filter before ours below)
import httpx
from authlib.oidc.core import CodeIDToken
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from datenlabor.access.accounts import USERNAME
from datenlabor.access.principal import ANONYMOUS, Principal
from datenlabor.config import Settings
from datenlabor.errors import BadInput, Conflict, DatenlaborError, NotFound
from datenlabor.pool.secret import pool_key
from datenlabor.store.models import User
from datenlabor.web.auth import client_of, start_browser_session
from datenlabor.web.errors import problem

with warnings.catch_warnings():
    # Authlib 1.9 announces that its httpx integration will move to the "httpx2" package;
    # the client works the same with httpx, so the import-time notice is kept out of logs.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

log = logging.getLogger("datenlabor.web.oidc")

LOGIN_PATH = "/auth/oidc/login"
CALLBACK_PATH = "/auth/oidc/callback"
PENDING_COOKIE = "dl_oidc"
COOKIE_PATH = "/auth/oidc"
PENDING_SECONDS = 600  # time the user has at the provider to sign in
SCOPE = "openid profile email"
LEEWAY_SECONDS = 60  # clock skew accepted between us and the provider
METADATA_TTL_SECONDS = 3600
JWKS_REFRESH_MIN_SECONDS = 30  # unknown key ids refetch the JWKS at most this often
HTTP_TIMEOUT_SECONDS = 10.0
_SALT = "datenlabor.oidc.pending-login"
# Asymmetric signatures only: an HS256 token would be signed with the client secret.
_SAFE_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
# Provider errors that mean "the person did not (or could not) sign in".
_REFUSALS = {
    "access_denied",
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
    "temporarily_unavailable",
}


class OidcError(DatenlaborError):
    """A sign-in that cannot go on; ``status_code`` is the HTTP answer (400/401/403/502)."""

    def __init__(self, status_code: int, message: str, reason: str, **detail: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
        self.detail = detail


@dataclass
class _Provider:
    """The provider's discovery document and keys, fetched on first use and cached."""

    issuer: str
    metadata: dict[str, Any] | None = None
    metadata_at: float = 0.0
    keys: KeySet | None = None
    keys_at: float = 0.0
    refreshed_at: float = -JWKS_REFRESH_MIN_SECONDS  # last refetch for an unknown key id

    async def discover(self) -> dict[str, Any]:
        now = time.monotonic()
        if self.metadata is not None and now - self.metadata_at < METADATA_TTL_SECONDS:
            return self.metadata
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await _get_json(url, "discovery document")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise OidcError(
                    502, f"the provider's discovery document lacks {key!r}", "bad-discovery"
                )
        if doc["issuer"].rstrip("/") != self.issuer.rstrip("/"):
            raise OidcError(
                502,
                f"the provider calls itself {doc['issuer']!r}, not {self.issuer!r} "
                "(check the setting oidc_issuer)",
                "issuer-mismatch",
            )
        if self.metadata is not None and doc["jwks_uri"] != self.metadata["jwks_uri"]:
            self.keys = None
        self.metadata, self.metadata_at = doc, now
        return doc

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        """The provider's public keys; ``refresh`` after an unknown key id (key rotation)."""
        now = time.monotonic()
        due = self.keys is None or now - self.keys_at >= METADATA_TTL_SECONDS
        if refresh and now - self.refreshed_at >= JWKS_REFRESH_MIN_SECONDS:
            due, self.refreshed_at = True, now
        if due or self.keys is None:
            metadata = await self.discover()
            raw = await _get_json(metadata["jwks_uri"], "signing keys (JWKS)")
            try:
                self.keys = KeySet.import_key_set(raw)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise OidcError(
                    502, f"the provider's signing keys cannot be read: {exc}", "bad-jwks"
                ) from exc
            self.keys_at = now
        return self.keys


async def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
            resp = await client.get(url, headers={"Accept": "application/json"})
        resp.raise_for_status()
        doc = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("OpenID provider: cannot fetch %s from %s: %s", what, url, exc)
        raise OidcError(
            502,
            f"the sign-in provider cannot be reached (its {what} at {url}: {exc})",
            "provider-unreachable",
        ) from exc
    if not isinstance(doc, dict):
        raise OidcError(502, f"the provider's {what} is not a JSON object", "provider-unreachable")
    return doc


@dataclass
class OidcConfig:
    """What ``install`` needs from the settings, checked once at start-up."""

    issuer: str
    client_id: str
    client_secret: str | None
    default_org: str | None
    default_role: str
    serializer: URLSafeTimedSerializer
    secure_cookies: bool
    provider: _Provider


def install(app: FastAPI) -> None:
    """Add the OpenID Connect routes if ``oidc_issuer`` is set; otherwise do nothing."""
    pool = app.state.gate.pool
    settings: Settings = pool.settings
    if not settings.oidc_issuer:
        return
    if not settings.oidc_client_id:
        raise BadInput("oidc_issuer is set but oidc_client_id is not", column="oidc_client_id")
    config = OidcConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or None,
        default_org=settings.oidc_default_org or None,
        default_role=settings.oidc_default_role,
        serializer=URLSafeTimedSerializer(pending_key(pool.root), salt=_SALT),
        secure_cookies=settings.secure_cookies,
        provider=_Provider(settings.oidc_issuer),
    )
    app.state.oidc = config

    @app.get(LOGIN_PATH, include_in_schema=False, name="oidc_login")
    async def oidc_login(request: Request, next: str = "/") -> Response:
        return await _login(request, config, next)

    @app.get(CALLBACK_PATH, include_in_schema=False, name="oidc_callback")
    async def oidc_callback(request: Request) -> Response:
        return await _callback(request, config)


def enabled(app: FastAPI) -> bool:
    """Whether ``install`` set up OpenID Connect on this app (for a "sign in with" button)."""
    return getattr(app.state, "oidc", None) is not None


def login_path(next: str = "/") -> str:
    """The link that starts an OpenID Connect sign-in and comes back to ``next``."""
    return LOGIN_PATH + "?" + urlencode({"next": safe_next(next)})


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/`` (no open redirects)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return "/"
    return value


def pending_key(pool_root: Path) -> bytes:
    """The key signing pending-login cookies, created once per pool (mode 0600)."""
    return pool_key(pool_root, "oidc")


def _client(config: OidcConfig, metadata: dict[str, Any], redirect_uri: str) -> AsyncOAuth2Client:
    if config.client_secret is None:
        method = "none"  # a public client: PKCE alone protects the code
    else:
        offered = metadata.get("token_endpoint_auth_methods_supported") or [
            "client_secret_basic"  # the default when the provider does not say (OIDC Discovery)
        ]
        usable = [m for m in ("client_secret_basic", "client_secret_post") if m in offered]
        if not usable:
            raise OidcError(
                502,
                "the provider offers neither client_secret_basic nor client_secret_post "
                f"for the token endpoint (it offers {', '.join(map(str, offered))})",
                "unsupported-client-auth",
            )
        method = usable[0]
    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret,
        token_endpoint_auth_method=method,
        code_challenge_method="S256",
        scope=SCOPE,
        redirect_uri=redirect_uri,
        timeout=HTTP_TIMEOUT_SECONDS,
    )


def _redirect_uri(request: Request) -> str:
    return str(request.url_for("oidc_callback"))


async def _login(request: Request, config: OidcConfig, next: str) -> Response:
    metadata = await config.provider.discover()
    redirect_uri = _redirect_uri(request)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43..128
    async with _client(config, metadata, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
        )
    pending = {"s": state, "n": nonce, "v": verifier, "r": redirect_uri, "x": safe_next(next)}
    response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        PENDING_COOKIE,
        config.serializer.dumps(pending),
        max_age=PENDING_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        secure=config.secure_cookies,
        samesite="lax",  # sent on the provider's top-level redirect back to us
    )
    return response


async def _callback(request: Request, config: OidcConfig) -> Response:
    try:
        principal, created = await _complete(request, config)
    except OidcError as exc:
        return await _failed(request, config, exc)
    gate = request.app.state.gate
    pending = request.state.oidc_pending
    client = client_of(request)
    if created is not None:
        await run_in_threadpool(
            gate.audit.log,
            principal,
            "account",
            detail={
                "user": principal.username,
                "role": principal.role,
                "org": principal.organisation,
                "via": "oidc",
                **created,
            },
            client=client,
        )
    response = RedirectResponse(
        safe_next(pending.get("x")), status_code=303, headers={"Cache-Control": "no-store"}
    )
    await run_in_threadpool(start_browser_session, request, response, str(principal.username))
    _forget_pending(response, config)
    await run_in_threadpool(
        gate.audit.log,
        principal,
        "login",
        detail={"method": "oidc", "issuer": config.issuer},
        client=client,
    )
    return response


async def _complete(
    request: Request, config: OidcConfig
) -> tuple[Principal, dict[str, Any] | None]:
    """Check the provider's answer and find (or create) the account; OidcError if not."""
    params = request.query_params
    request.state.oidc_pending = {}
    code, state = params.get("code"), params.get("state")
    if error := params.get("error"):
        if not re.fullmatch(r"[a-z0-9_.-]{1,64}", error):
            error = "unknown_error"  # error codes are short tokens (RFC 6749, 4.1.2.1)
        status = 401 if error in _REFUSALS else 400
        message = f"the sign-in provider refused the sign-in ({error})"
        description = params.get("error_description") or ""
        # Shown only in answer to a sign-in this browser started: a crafted link must not
        # put text of the attacker's choosing on our pages.
        if description and state and _same(state, _peek_pending(request, config).get("s")):
            message += f": {description[:300]}"
        raise OidcError(status, message, "provider-error", error=error)
    if not code or not state:
        raise OidcError(400, "the sign-in answer lacks 'code' or 'state'; start again", "malformed")
    pending = _read_pending(request, config)
    if not _same(state, pending["s"]):
        raise OidcError(
            400,
            "this sign-in answer does not belong to the sign-in started in this browser "
            "(state mismatch); start again",
            "state-mismatch",
        )
    request.state.oidc_pending = pending
    iss_param = params.get("iss")  # RFC 9207, sent by Keycloak: guards against mix-ups
    metadata = await config.provider.discover()
    if iss_param is not None and iss_param != metadata["issuer"]:
        raise OidcError(
            400, "the sign-in answer comes from another provider (iss)", "issuer-mismatch"
        )
    token = await _exchange(config, metadata, pending, code)
    claims = await _validate_id_token(config, metadata, token, pending)
    return await run_in_threadpool(_account, request, config, claims)


def _read_pending(request: Request, config: OidcConfig) -> dict[str, Any]:
    raw = request.cookies.get(PENDING_COOKIE)
    if not raw:
        raise OidcError(
            400,
            "no sign-in was started in this browser, or it was finished already "
            "(are cookies blocked?); start again",
            "no-pending-login",
        )
    try:
        pending = config.serializer.loads(raw, max_age=PENDING_SECONDS)
    except SignatureExpired as exc:
        raise OidcError(
            400,
            f"the sign-in took longer than {PENDING_SECONDS // 60} minutes; start again",
            "pending-login-expired",
        ) from exc
    except BadSignature as exc:
        raise OidcError(
            400, "the sign-in cookie is not valid; start again", "bad-pending-login"
        ) from exc
    if not isinstance(pending, dict) or not all(
        isinstance(pending.get(k), str) for k in ("s", "n", "v", "r", "x")
    ):
        raise OidcError(400, "the sign-in cookie is not valid; start again", "bad-pending-login")
    return pending


def _peek_pending(request: Request, config: OidcConfig) -> dict[str, Any]:
    try:
        return _read_pending(request, config)
    except OidcError:
        return {}


def _same(given: str, expected: object) -> bool:
    """Constant-time comparison that also copes with non-ASCII input."""
    if not isinstance(expected, str):
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


async def _exchange(
    config: OidcConfig, metadata: dict[str, Any], pending: dict[str, Any], code: str
) -> dict[str, Any]:
    try:
        async with _client(config, metadata, pending["r"]) as client:
            token = await client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=pending["v"],
                redirect_uri=pending["r"],
            )
    except OAuthError as exc:
        raise OidcError(
            401,
            f"the sign-in provider did not accept the sign-in ({exc.error}); start again",
            "token-refused",
            error=str(exc.error)[:100],
        ) from exc
    except httpx.HTTPStatusError as exc:
        raise OidcError(
            502,
            f"the provider's token endpoint answered HTTP {exc.response.status_code}",
            "token-endpoint-failed",
        ) from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcError(
            502, f"the provider's token endpoint cannot be used: {exc}", "token-endpoint-failed"
        ) from exc
    if not isinstance(token.get("id_token"), str):
        raise OidcError(
            401,
            "the provider sent no ID token (is the scope 'openid' allowed for this client?)",
            "no-id-token",
        )
    return dict(token)


async def _validate_id_token(
    config: OidcConfig, metadata: dict[str, Any], token: dict[str, Any], pending: dict[str, Any]
) -> dict[str, Any]:
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in offered if a in _SAFE_ALGS] or ["RS256"]
    registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
    try:
        try:
            decoded = jwt.decode(
                token["id_token"], await config.provider.key_set(), registry=registry
            )
        except InvalidKeyIdError:  # the provider may have rotated its keys
            keys = await config.provider.key_set(refresh=True)
            decoded = jwt.decode(token["id_token"], keys, registry=registry)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "sub": {"essential": True},
                "aud": {"essential": True, "value": config.client_id},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "nonce": {"essential": True, "value": pending["n"]},
            },
            {
                "nonce": pending["n"],
                "client_id": config.client_id,
                "access_token": token.get("access_token"),
            },
        )
        claims.validate(leeway=LEEWAY_SECONDS)
    except (JoseError, ValueError, TypeError) as exc:
        what = str(getattr(exc, "error", None) or exc.__class__.__name__)
        why = str(getattr(exc, "description", None) or ("" if what in str(exc) else exc))
        raise OidcError(
            401,
            f"the ID token from the sign-in provider is not valid ({what}"
            + (f": {why})" if why else ")"),
            "invalid-id-token",
            error=what[:100],
        ) from exc
    return dict(claims)


def _account(
    request: Request, config: OidcConfig, claims: dict[str, Any]
) -> tuple[Principal, dict[str, Any] | None]:
    accounts = request.app.state.gate.accounts
    issuer, sub = str(claims["iss"]), str(claims["sub"])
    subject = f"{issuer}|{sub}"
    who = {"subject": subject, "preferred_username": claims.get("preferred_username")}
    found = accounts.user_by_oidc(subject)
    if found is not None:
        return found, None
    if _linked_but_inactive(request, subject):
        raise OidcError(403, "this account is deactivated; ask an administrator", "inactive", **who)
    if config.default_org is None:
        suggestion = _username_candidates(claims)[0]
        raise OidcError(
            403,
            "your account is not registered in Datenlabor. Ask an administrator to run: "
            f"datenlabor users add {suggestion} --org ORG --role ROLE "
            f"--oidc-subject '{subject}' --no-password",
            "not-registered",
            **who,
        )
    display = (
        str(claims.get("name") or "").strip()
        or " ".join(str(claims.get(k) or "").strip() for k in ("given_name", "family_name")).strip()
    )
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    if claims.get("email_verified") is False:
        email = None  # an address the provider has not checked is not worth keeping
    for username in _username_candidates(claims):
        try:
            accounts.add_user(
                username,
                org=config.default_org,
                role=config.default_role,
                password=None,
                display_name=display[:300],
                email=email[:300] if email else None,
                oidc_subject=subject,
            )
        except Conflict:
            # Taken, or the same person finished a sign-in in another tab a moment ago.
            if (found := accounts.user_by_oidc(subject)) is not None:
                return found, None
            continue
        except (NotFound, BadInput) as exc:
            log.error("OpenID Connect: cannot create an account for %s: %s", subject, exc)
            raise OidcError(
                403,
                f"your account cannot be created ({exc}); the setting oidc_default_org or "
                "oidc_default_role needs an administrator's attention",
                "provisioning-failed",
                **who,
            ) from exc
        created = accounts.user_by_oidc(subject)
        if created is not None:
            return created, {"subject": subject}
    raise OidcError(
        403, "no free user name for your account; ask an administrator", "no-username", **who
    )


def _linked_but_inactive(request: Request, subject: str) -> bool:
    with request.app.state.gate.pool.store.session() as s:
        return s.scalar(select(User.id).where(User.oidc_subject == subject)) is not None


def _username_candidates(claims: dict[str, Any]) -> list[str]:
    """``preferred_username`` made valid, then with -2, -3, …, then a random suffix."""
    base = ""
    for key in ("preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            base = value.strip()
            break
    base = re.sub(r"[^A-Za-z0-9._@-]+", "-", base).strip("._@-")[:90].rstrip("._@-")
    if not base or not USERNAME.match(base):
        base = "oidc-" + re.sub(r"[^A-Za-z0-9]", "", str(claims.get("sub", "")))[:12].lower()
        if base == "oidc-":
            base = "oidc-user"
    return [base, *(f"{base}-{i}" for i in range(2, 21)), f"{base}-{secrets.token_hex(4)}"]


def _forget_pending(response: Response, config: OidcConfig) -> None:
    response.delete_cookie(
        PENDING_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        secure=config.secure_cookies,
        samesite="lax",
    )


async def _failed(request: Request, config: OidcConfig, exc: OidcError) -> Response:
    """Audit the failure and answer it the way the app answers its other errors."""
    detail: dict[str, Any] = {"method": "oidc", "issuer": config.issuer, "reason": exc.reason}
    detail.update({k: v for k, v in exc.detail.items() if v is not None})
    try:
        await run_in_threadpool(
            request.app.state.gate.audit.log,
            ANONYMOUS,
            "login-failed",
            outcome="failed",
            detail=detail,
            client=client_of(request),
        )
    except Exception:  # the person still gets a clear answer; the log says why it is missing
        log.exception("cannot audit a failed OpenID Connect sign-in (%s)", exc.reason)
    handler = request.app.exception_handlers.get(DatenlaborError)
    response: Response | None = None
    if handler is not None:
        response = await handler(request, exc)
    if response is None or 300 <= response.status_code < 400:
        # No handler, or the UI's "please sign in" redirect for a 401, which would send the
        # browser round in circles: say what went wrong instead.
        if "text/html" in request.headers.get("accept", ""):
            response = _html_problem(exc.status_code, str(exc))
        else:
            response = problem(exc.status_code, str(exc))
    if exc.reason != "no-pending-login":
        _forget_pending(response, config)
    return response


def _html_problem(status: int, message: str) -> HTMLResponse:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Sign-in failed – Datenlabor</title></head><body>"
        f"<h1>Sign-in failed</h1><p>{html.escape(message)}</p>"
        f'<p><a href="/login">Back to the sign-in page</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
