"""Site links: which of the self-test page's results the collector takes in.

Anyone who can open the self-test page can post a result labelled with any site and room, so a
page result reaches the database (and the fleet, as a browser row of its own that never
replaces an agent's room: ``fleet.model.Run.key``) only when the page was opened with a site
link: ``?site=NAME&key=TOKEN``, the token a live one of kind "link"
made for that very site (``readiness serve token add --link --site NAME``). Without one the
result is still judged, stored in the results folder and shown to the person; only the
collecting is skipped, with a reason from :data:`REASONS`.

A link token is good for nothing else: ``POST /api/v1/results`` takes upload tokens only, and an
upload token is not a site link (links are shared widely; they let browser results in, nothing
more).
"""

from __future__ import annotations

from typing import Any

from readiness.collector.ingest import Refused, ingest
from readiness.collector.store import Store

# why a page result was not collected (the JSON answer's "not_collected")
NO_LINK, BAD_LINK, REVOKED_LINK, WRONG_SITE = "no_site_link", "bad_link", "revoked_link", "wrong_site"
REASONS = (NO_LINK, BAD_LINK, REVOKED_LINK, WRONG_SITE)


def collect_page_result(store: Store, body: bytes, site: str, key: str, max_body: int, checker: Any = None) -> str | None:
    """Store one self-test result document (``body``, labelled ``site``) when ``key`` is a live
    site link of that site. Returns None when it is stored (or was already), else the reason it
    is not (one of :data:`REASONS`). Raises ``store.Unavailable`` (database away) and
    ``ingest.Refused`` for any other refusal."""
    if not key:
        return NO_LINK
    token = store.lookup_token(key)
    if token is None or token.kind != "link":
        return BAD_LINK
    if token.revoked is not None:
        return REVOKED_LINK
    if token.site != site.strip():  # ingest compares the stripped label
        return WRONG_SITE
    try:  # the storing transaction checks the link again: one revoked a moment ago stores nothing
        ingest(store, body, token.site, max_body, checker, key)
    except Refused as exc:
        reason = {"revoked_token": REVOKED_LINK, "wrong_site": WRONG_SITE}.get(exc.code)
        if reason is None:
            raise
        return reason
    return None
