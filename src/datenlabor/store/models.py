"""SQLAlchemy models of the metadata store.

The data itself lives in Delta tables; the store holds what people need to find,
trust and trace it: catalogue metadata per dataset, provenance per version.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Organisation(Base):
    """A publishing body: ministry, agency, Land office."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    datasets: Mapped[list[Dataset]] = relationship(back_populates="publisher")


class Dataset(Base):
    """Catalogue record of a dataset; its rows live in the Delta table at ``table_path``."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    table_path: Mapped[str] = mapped_column(String(300), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    publisher_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    licence: Mapped[str | None] = mapped_column(String(100))
    keywords: Mapped[list[Any]] = mapped_column(JSON, default=list)
    themes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    spatial: Mapped[list[Any]] = mapped_column(JSON, default=list)
    temporal_start: Mapped[date | None] = mapped_column(Date)
    temporal_end: Mapped[date | None] = mapped_column(Date)
    contact_point: Mapped[str | None] = mapped_column(String(300))
    primary_key: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # public: everyone, also without signing in; internal: every signed-in user;
    # restricted: the publisher's members and whoever holds a grant.
    visibility: Mapped[str] = mapped_column(String(20), default="internal")
    # Soft delete: hidden everywhere at once, purged by cleanup after ``purge_after``.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purge_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Statistical disclosure control rules; NULL = not confidential (datenlabor.disclosure).
    disclosure: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Harvested record or GENESIS table this dataset mirrors (source, identifier, modified,
    # content hash); NULL for uploads.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    publisher: Mapped[Organisation | None] = relationship(back_populates="datasets")
    versions: Mapped[list[Version]] = relationship(
        back_populates="dataset", order_by="Version.number", cascade="all, delete-orphan"
    )
    grants: Mapped[list[Grant]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="Grant.id"
    )


class Version(Base):
    """One immutable load of a dataset: a Delta table version plus its provenance."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number", name="uq_versions_dataset_number"),
        UniqueConstraint("dataset_id", "delta_version", name="uq_versions_dataset_delta"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    delta_version: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(20))
    row_count: Mapped[int] = mapped_column(BigInteger)
    table_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_name: Mapped[str | None] = mapped_column(String(500))
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    source_bytes: Mapped[int | None] = mapped_column(BigInteger)
    source_format: Mapped[str] = mapped_column(String(20))
    detection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")


ROLES = ("admin", "steward", "analyst", "viewer")


class User(Base):
    """A person (or service account) of an organisation, with one platform role."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(300), default="")
    email: Mapped[str | None] = mapped_column(String(300))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    role: Mapped[str] = mapped_column(String(20))
    # argon2id hash; NULL for accounts that only sign in through OpenID Connect.
    password_hash: Mapped[str | None] = mapped_column(String(300))
    # "issuer|subject" of the OpenID Connect identity linked to this account.
    oidc_subject: Mapped[str | None] = mapped_column(String(500), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    organisation: Mapped[Organisation] = relationship()


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored (the token itself is 256 random bits)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell tokens apart
    name: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(10))  # read | write
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class WebSession(Base):
    """A browser session: the cookie holds a random id, the store its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class Grant(Base):
    """Read access to a dataset for an organisation or a user, possibly narrowed.

    ``hidden_columns`` never leave the pool for the grantee; ``row_filter`` is a SQL
    predicate (checked at creation) that every row the grantee sees satisfies.
    """

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    hidden_columns: Mapped[list[Any]] = mapped_column(JSON, default=list)
    row_filter: Mapped[str | None] = mapped_column(Text)
    # Microdata of a confidential dataset (else only its protected aggregate table).
    microdata: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="grants")
    organisation: Mapped[Organisation | None] = relationship()
    user: Mapped[User | None] = relationship()


class AuditEntry(Base):
    """One line of the append-only audit log; ``hash`` chains it to the line before."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    # {"slug": version, ...} of every dataset version the action touched
    datasets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    query: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    client: Mapped[str | None] = mapped_column(String(100))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    refs: Mapped[list[AuditRef]] = relationship(cascade="all, delete-orphan")


class AuditRef(Base):
    """Index of audit entries by dataset and publisher, so stewards can list accesses."""

    __tablename__ = "audit_refs"

    entry_id: Mapped[int] = mapped_column(
        ForeignKey("audit_log.id", ondelete="CASCADE"), primary_key=True
    )
    dataset: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    publisher: Mapped[str | None] = mapped_column(String(100), index=True)


# -- AI assistance (datenlabor.assist): models, suggestions, human decisions ----------------
class AssistModel(Base):
    """A trained (or configured) AI model version and where it came from."""

    __tablename__ = "assist_models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))  # e.g. "triage"
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # sklearn | llm
    # training data: the exact pool dataset version and its columns
    dataset: Mapped[str | None] = mapped_column(String(100))
    dataset_version: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact: Mapped[str | None] = mapped_column(String(500))  # path relative to the pool
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssistSuggestion(Base):
    """What the AI suggested for one request (routing or answer draft), with its evidence.

    The AI never decides: a suggestion stays ``open`` until a person decides on it.
    """

    __tablename__ = "assist_suggestions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(200), index=True)
    # the request's pool dataset version, when it came from the pool
    dataset: Mapped[str | None] = mapped_column(String(100))
    dataset_version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # triage | answer
    model_id: Mapped[int | None] = mapped_column(ForeignKey("assist_models.id"))
    template_version: Mapped[str | None] = mapped_column(String(100))
    retrieved: Mapped[list[Any]] = mapped_column(JSON, default=list)  # passages with sources
    suggestion: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[AssistModel | None] = relationship()
    decisions: Mapped[list[AssistDecision]] = relationship(
        back_populates="suggestion", order_by="AssistDecision.id"
    )


class AssistDecision(Base):
    """A person's decision on a suggestion: accepted, edited or rejected, and the result."""

    __tablename__ = "assist_decisions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(
        ForeignKey("assist_suggestions.id", ondelete="CASCADE"), index=True
    )
    reviewer: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(20))  # accepted | edited | rejected
    final: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # routing/answer sent
    edits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    suggestion: Mapped[AssistSuggestion] = relationship(back_populates="decisions")


# -- Trustworthy AI governance (datenlabor.governance) ---------------------------------------
class GovEntry(Base):
    """An AI register entry or a marketplace use case; its content lives in versions."""

    __tablename__ = "gov_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)  # register | usecase
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    # the platform's own AI service this entry describes (technical fields refresh from it)
    model_name: Mapped[str | None] = mapped_column(String(100))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    organisation: Mapped[Organisation | None] = relationship()
    versions: Mapped[list[GovEntryVersion]] = relationship(
        back_populates="entry", order_by="GovEntryVersion.number", cascade="all, delete-orphan"
    )


class GovEntryVersion(Base):
    """One immutable state of an entry: every change makes a new one."""

    __tablename__ = "gov_entry_versions"
    __table_args__ = (UniqueConstraint("entry_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("gov_entries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    changed_by: Mapped[str] = mapped_column(String(200))  # a person or "platform" (auto-refresh)
    note: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entry: Mapped[GovEntry] = relationship(back_populates="versions")


class GovAssessment(Base):
    """An impact assessment of an entry: answers to a questionnaire version and the result."""

    __tablename__ = "gov_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("gov_entries.id", ondelete="CASCADE"))
    questionnaire: Mapped[str] = mapped_column(String(100))  # name and version of the YAML
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # scores, level, class
    level: Mapped[int | None] = mapped_column(Integer)  # impact level I..IV as 1..4
    risk_class: Mapped[str | None] = mapped_column(String(30))  # EU AI Act class
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GovAudit(Base):
    """A fairness audit run: over which data, with which parameters, what it found."""

    __tablename__ = "gov_audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("gov_entries.id", ondelete="CASCADE"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("assist_models.id"))
    dataset: Mapped[str | None] = mapped_column(String(100))
    dataset_version: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GovReaction(Base):
    """Participation on an entry: a comment, or an authority's interest in reuse/cooperation."""

    __tablename__ = "gov_reactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("gov_entries.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # comment | reuse | cooperation
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
