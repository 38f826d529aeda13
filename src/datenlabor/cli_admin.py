"""CLI commands of the service: serve, organisations, users, tokens, grants, audit, deletion."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.access.principal import Principal
    from datenlabor.pool.pool import Pool
    from datenlabor.service.gate import Gate

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer, open_pool: Callable[[], Pool], state: Any) -> None:
    orgs = typer.Typer(help="Organisations (ministries, agencies, Länder)", no_args_is_help=True)
    users = typer.Typer(help="User accounts and roles", no_args_is_help=True)
    tokens = typer.Typer(help="API tokens", no_args_is_help=True)
    grants = typer.Typer(help="Read access to restricted datasets", no_args_is_help=True)
    audit = typer.Typer(help="The audit log", no_args_is_help=True)
    app.add_typer(orgs, name="orgs")
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")
    app.add_typer(grants, name="grants")
    app.add_typer(audit, name="audit")

    def gate() -> Gate:
        from datenlabor.service.gate import Gate

        return Gate(open_pool())

    def local(g: Gate) -> Principal:
        from datenlabor.access.principal import local_admin

        return local_admin(g.pool.settings.user)

    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8000,
        workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    ) -> None:
        """Run the web API and UI."""
        import uvicorn

        from datenlabor.web.limits import server_options

        pool = open_pool()
        os.environ["DATENLABOR_POOL"] = str(pool.root)
        if pool.settings.database_url:
            os.environ["DATENLABOR_DATABASE_URL"] = pool.settings.database_url
        err.print(f"Datenlabor: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
        uvicorn.run(
            "datenlabor.web.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,
            # h11 with a bounded request head, keep-alive longer than a proxy's idle timeout
            **server_options(),
            # A worker busy with a long query misses uvicorn's 5 s health ping and gets
            # killed with its requests; 60 s still replaces a truly hung worker.
            timeout_worker_healthcheck=60,
        )

    @orgs.command("add")
    def orgs_add(slug: str, name: Annotated[str, typer.Option("--name", help="Full name")]) -> None:
        """Create an organisation (or rename an existing one)."""
        g = gate()
        org = g.accounts.add_org(slug, name)
        g.audit.log(local(g), "account", detail={"org": slug})
        err.print(f"[green]✓[/] organisation {org.slug}: {org.name}")

    @orgs.command("list")
    def orgs_list() -> None:
        t = Table("slug", "name")
        for o in gate().accounts.orgs():
            t.add_row(o.slug, o.name)
        out.print(t)

    @users.command("add")
    def users_add(
        username: str,
        org: Annotated[str, typer.Option("--org", help="Organisation slug")],
        role: Annotated[str, typer.Option("--role", help="admin|steward|analyst|viewer")],
        name: Annotated[str, typer.Option("--name", help="Display name")] = "",
        email: Annotated[str | None, typer.Option(help="E-mail address")] = None,
        oidc_subject: Annotated[
            str | None, typer.Option(help="Link an OpenID Connect identity 'issuer|sub'")
        ] = None,
        no_password: Annotated[
            bool, typer.Option("--no-password", help="Sign-in only through OpenID Connect")
        ] = False,
    ) -> None:
        """Create a user; the password comes from DATENLABOR_PASSWORD or a prompt."""
        password = None
        if not no_password:
            password = os.environ.get("DATENLABOR_PASSWORD")
            if password is None:
                if not sys.stdin.isatty():
                    raise BadInput("set DATENLABOR_PASSWORD or use --no-password (no terminal)")
                password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        g = gate()
        info = g.accounts.add_user(
            username,
            org=org,
            role=role,
            password=password,
            display_name=name,
            email=email,
            oidc_subject=oidc_subject,
        )
        g.audit.log(local(g), "account", detail={"user": username, "role": role, "org": org})
        err.print(f"[green]✓[/] user {info.username} ({info.role}, {info.organisation})")

    @users.command("list")
    def users_list(org: Annotated[str | None, typer.Option(help="Only this org")] = None) -> None:
        t = Table("user", "organisation", "role", "active", "SSO")
        for u in gate().accounts.users(org):
            t.add_row(
                u.username,
                u.organisation,
                u.role,
                "yes" if u.active else "no",
                "yes" if u.sso else "",
            )
        out.print(t)

    @users.command("set")
    def users_set(
        username: str,
        role: Annotated[str | None, typer.Option(help="New role")] = None,
        org: Annotated[str | None, typer.Option(help="New organisation")] = None,
        active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
        password: Annotated[
            bool, typer.Option("--password", help="Set the password from DATENLABOR_PASSWORD")
        ] = False,
    ) -> None:
        """Change role, organisation, active flag or password of a user."""
        new_password = None
        if password:
            new_password = os.environ.get("DATENLABOR_PASSWORD")
            if not new_password:
                raise BadInput("set DATENLABOR_PASSWORD to the new password")
        g = gate()
        g.accounts.update_user(username, role=role, org=org, active=active, password=new_password)
        g.audit.log(local(g), "account", detail={"user": username})
        err.print(f"[green]✓[/] user {username} updated")

    @tokens.command("create")
    def tokens_create(
        username: str,
        scope: Annotated[str, typer.Option(help="read or write")] = "read",
        days: Annotated[int, typer.Option(help="Days until it expires (0: never)")] = 90,
        name: Annotated[str, typer.Option(help="What the token is for")] = "",
    ) -> None:
        """Create an API token for USERNAME and print only the token."""
        g = gate()
        token = g.accounts.create_token(username, scope=scope, days=days or None, name=name)
        g.audit.log(local(g), "token", detail={"user": username, "created": token[:10]})
        sys.stdout.write(token + "\n")

    @tokens.command("list")
    def tokens_list(username: str) -> None:
        t = Table("id", "prefix", "name", "scope", "expires", "revoked", "last used")
        for tok in gate().accounts.tokens(username):
            t.add_row(
                str(tok.id),
                tok.prefix,
                tok.name,
                tok.scope,
                f"{tok.expires_at:%Y-%m-%d}" if tok.expires_at else "never",
                "yes" if tok.revoked else "",
                f"{tok.last_used_at:%Y-%m-%d %H:%M}" if tok.last_used_at else "",
            )
        out.print(t)

    @tokens.command("revoke")
    def tokens_revoke(username: str, token_id: int) -> None:
        g = gate()
        g.accounts.revoke_token(username, token_id)
        g.audit.log(local(g), "token", detail={"user": username, "revoked": token_id})
        err.print(f"[green]✓[/] token {token_id} of {username} revoked")

    @grants.command("add")
    def grants_add(
        slug: str,
        org: Annotated[str | None, typer.Option("--org", help="Organisation slug")] = None,
        user: Annotated[str | None, typer.Option("--user", help="User name")] = None,
        hide_columns: Annotated[
            str | None, typer.Option("--hide-columns", help="Columns withheld, comma-separated")
        ] = None,
        rows: Annotated[
            str | None, typer.Option("--rows", help="SQL predicate rows must satisfy")
        ] = None,
        microdata: Annotated[
            bool,
            typer.Option("--microdata", help="Microdata of a confidential dataset"),
        ] = False,
    ) -> None:
        """Let an organisation or user read a restricted dataset (optionally narrowed), or
        the microdata of a confidential one."""
        from datenlabor.service.grants import add_grant

        g = gate()
        hidden = [c for c in (hide_columns or "").split(",") if c.strip()]
        info = add_grant(
            g,
            local(g),
            slug,
            org=org,
            user=user,
            hide_columns=hidden,
            rows=rows,
            microdata=microdata,
        )
        err.print(f"[green]✓[/] grant {info.id} on {slug} for {org or user}")

    @grants.command("list")
    def grants_list(slug: str) -> None:
        from datenlabor.service.grants import grants_of

        g = gate()
        t = Table("id", "to", "hidden columns", "rows")
        for gr in grants_of(g, local(g), slug):
            t.add_row(
                str(gr.id),
                gr.organisation or f"user {gr.user}",
                ", ".join(gr.hidden_columns),
                gr.row_filter or "all",
            )
        out.print(t)

    @grants.command("remove")
    def grants_remove(slug: str, grant_id: int) -> None:
        from datenlabor.service.grants import revoke_grant

        g = gate()
        revoke_grant(g, local(g), slug, grant_id)
        err.print(f"[green]✓[/] grant {grant_id} removed")

    @app.command("delete")
    def delete(slug: str) -> None:
        """Soft-delete a dataset (purged by `cleanup` after the retention period)."""
        from datenlabor.service.publishing import delete as delete_dataset

        g = gate()
        purge = delete_dataset(g, local(g), slug)
        err.print(f"[green]✓[/] {slug} deleted; restorable until {purge}")

    @app.command("restore")
    def restore(slug: str) -> None:
        """Undo the soft delete of a dataset."""
        g = gate()
        g.pool.restore(slug)
        g.audit.log(local(g), "restore", detail={"dataset": slug})
        err.print(f"[green]✓[/] {slug} restored")

    @audit.command("verify")
    def audit_verify() -> None:
        """Check the hash chain of the whole audit log; exit 1 if it was tampered with."""
        result = gate().audit.verify()
        if result.ok:
            out.print(f"audit log intact: {result.entries} entries, head {result.head}")
            return
        err.print(
            f"[red]audit log TAMPERED[/]: entry {result.first_bad} does not fit ({result.reason}); "
            f"{result.entries} entries before it are intact"
        )
        raise typer.Exit(1)

    @audit.command("list")
    def audit_list(
        limit: Annotated[int, typer.Option(help="Newest N entries")] = 50,
        dataset: Annotated[str | None, typer.Option(help="Only this dataset")] = None,
        actor: Annotated[str | None, typer.Option(help="Only this user")] = None,
        action: Annotated[str | None, typer.Option(help="Only this action")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        from datenlabor.access.audit import entry_dict

        entries = [
            entry_dict(e)
            for e in gate().audit.entries(dataset=dataset, actor=actor, action=action, limit=limit)
        ]
        if as_json:
            sys.stdout.write(json.dumps(entries, ensure_ascii=False, indent=2) + "\n")
            return
        t = Table("id", "at", "actor", "action", "datasets", "rows", "outcome")
        for e in entries:
            t.add_row(
                str(e["id"]),
                e["at"][:19],
                e["actor"],
                e["action"],
                ", ".join(f"{k}@{v}" for k, v in e["datasets"].items()),
                "" if e["rows"] is None else str(e["rows"]),
                e["outcome"],
            )
        out.print(t)
