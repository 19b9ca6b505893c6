"""Who may send and read: upload tokens, site links, read tokens and partner share links (SHA-256
digests only), their expiry and last use; the audit log; sign-in sessions; the server's own
settings (its cookie key). A part of :class:`readiness.collector.store.Store`, which holds the
engine these methods use."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, delete, or_, select, update

from readiness.collector.engine import aware, utcnow
from readiness.collector.tables import TEXT_MAX, audit, sessions, settings, tokens

TOKEN_PREFIX = "rdy_"
KINDS = ("upload", "link", "read", "share")  # share: a partner's read of one site (``collector.access``)


@dataclass
class Token:
    id: int
    kind: str
    site: str
    hint: str
    created: datetime
    revoked: datetime | None  # an expired token reads as revoked at its expiry
    expires: datetime | None = None
    last_used: datetime | None = None

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.revoked == self.expires


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Accounts:
    """Tokens, the audit log, sessions and settings: the methods ``Store`` gets from here."""

    def add_token(self, kind: str, site: str, expires: datetime | None = None) -> tuple[Token, str]:
        """A new token; the secret is returned here once and never stored. ``expires``: when it
        stops working by itself (None: until revoked)."""
        if kind not in KINDS:
            raise ValueError(kind)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        with self._guard(), self.engine.begin() as conn:
            new_id = conn.execute(tokens.insert().values(kind=kind, site=site, digest=digest(secret), hint=secret[:10],
                                                         created=now, expires=expires)).inserted_primary_key[0]
        return Token(new_id, kind, site, secret[:10], now, None, expires), secret

    def lookup_token(self, secret: str) -> Token | None:
        """The token with this secret (revoked and expired ones too: the refusal can say so), or None."""
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.digest == digest(secret))).first()
        return None if row is None else _token(row)

    def list_tokens(self) -> list[Token]:
        with self._guard(), self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(select(tokens).order_by(tokens.c.id))]

    TOUCH_EVERY_S = 60.0

    def touch_token(self, token: Token) -> None:
        """Note that ``token`` was used now: written at most once a minute per token and process
        (an agent's every upload must not become a write of its own)."""
        now = time.monotonic()
        with self._touch_lock:
            if now - self._touched.get(token.id, -1e9) < self.TOUCH_EVERY_S:
                return
            self._touched[token.id] = now
        with self._guard(), self.engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.id == token.id).values(last_used=utcnow()))

    def revoke_tokens(self, token_id: int | None = None, site: str | None = None) -> int:
        """Revoke one token by id, or every live upload token and site link of a site; returns how many."""
        return len(self.revoke(token_id, site))

    def revoke(self, token_id: int | None = None, site: str | None = None,
               kinds: tuple[str, ...] = ("upload", "link")) -> list[Token]:
        """Revoke one token by id, or every live token of ``kinds`` of a site; returns those revoked."""
        cond = tokens.c.revoked.is_(None)
        if token_id is not None:
            cond = and_(cond, tokens.c.id == token_id)
        if site is not None:
            cond = and_(cond, tokens.c.site == site, tokens.c.kind.in_(kinds))
        with self._guard(), self.engine.begin() as conn:
            gone = [_token(r) for r in conn.execute(select(tokens).where(cond, _unexpired()))]
            if gone:
                conn.execute(update(tokens).where(tokens.c.id.in_([t.id for t in gone])).values(revoked=utcnow()))
        return gone

    # --- audit log, sessions, settings -----------------------------------------------------

    def add_audit(self, actor: str, action: str, target: str = "", site: str = "", detail: str = "") -> None:
        with self._guard(), self.engine.begin() as conn:
            conn.execute(audit.insert().values(at=utcnow(), actor=actor[:300], action=action[:32], target=target[:300],
                                               site=site[:TEXT_MAX], detail=detail[:1000]))

    def list_audit(self, limit: int = 1000, since: datetime | None = None) -> list[dict[str, Any]]:
        """The newest entries first."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit.c.at >= since)
        with self._guard(), self.engine.connect() as conn:
            return [{"at": aware(r.at), "actor": r.actor, "action": r.action, "target": r.target, "site": r.site,
                     "detail": r.detail} for r in conn.execute(query)]

    def prune_audit(self, keep: timedelta, now: datetime | None = None) -> int:
        """Delete audit entries older than ``keep``, and every session that is over (expired, signed
        out, or a sign-in never finished): the audit log keeps who signed in, not the sessions."""
        now = now or utcnow()
        cutoff = now - keep
        with self._guard(), self.engine.begin() as conn:
            conn.execute(delete(sessions).where(or_(sessions.c.expires < now, sessions.c.ended.is_not(None))))
            return conn.execute(delete(audit).where(audit.c.at < cutoff)).rowcount

    def setting(self, name: str, make: Callable[[], str]) -> str:
        """The stored setting ``name``; made by ``make()`` and stored the first time (the first
        of several processes asking at once wins, and all get its value)."""
        with self._guard(), self.engine.begin() as conn:
            value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
            if value is None:
                conn.execute(self._insert(settings).on_conflict_do_nothing(index_elements=[settings.c.name])
                             .values(name=name, value=make()))
                value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one()
        return value

    def put_session(self, secret: str, **values: Any) -> None:
        with self._guard(), self.engine.begin() as conn:
            conn.execute(sessions.insert().values(digest=digest(secret), created=utcnow(), **values))

    def get_session(self, secret: str) -> dict[str, Any] | None:
        """A session neither ended nor expired, or None."""
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.digest == digest(secret), sessions.c.ended.is_(None),
                                                      sessions.c.expires > utcnow())).first()
        return None if row is None else dict(row._mapping)

    def end_session(self, secret: str) -> bool:
        with self._guard(), self.engine.begin() as conn:
            return bool(conn.execute(update(sessions).where(sessions.c.digest == digest(secret),
                                                            sessions.c.ended.is_(None)).values(ended=utcnow())).rowcount)

    # --- retention -------------------------------------------------------------------------

    PRUNE_BATCH = 5000  # runs deleted per transaction
    PRUNE_PAUSE_S = 0.05  # between transactions: the writers waiting for the lock go first


def _unexpired() -> Any:
    return or_(tokens.c.expires.is_(None), tokens.c.expires > utcnow())


def _token(row: Any) -> Token:
    revoked = aware(row.revoked) if row.revoked is not None else None
    expires = aware(row.expires) if row.expires is not None else None
    if revoked is None and expires is not None and expires <= utcnow():
        revoked = expires  # stops by itself: every check of ``revoked`` refuses it
    return Token(row.id, row.kind, row.site, row.hint, aware(row.created), revoked, expires,
                 aware(row.last_used) if row.last_used is not None else None)
