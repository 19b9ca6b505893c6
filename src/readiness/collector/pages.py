"""The collector's own small pages: the audit log, sign-in and sign-out, the signed-in bar on
top of the fleet page, and a partner's share page. Self-contained HTML (no script, styles
inline), every word from the catalogs, every value escaped.

Sits below ``collector.http`` (which decides who sees them) and beside ``fleet.page``.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

from readiness.collector.access import Caller
from readiness.i18n.format import word

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}"
         "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left}"
         ".bar{display:flex;gap:1em;align-items:center;justify-content:flex-end;font-size:.9em;margin:0 0 1em}"
         ".PASS{color:#176b2c}.FAIL{color:#b00020}.WARN{color:#8a5a00}.UNKNOWN{color:#555}")


def shell(title: str, body: str, lang: str) -> str:
    return (f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def bar(caller: Caller, lang: str) -> str:
    """"Signed in as …" and the sign-out button, for a signed-in person; nothing otherwise."""
    if not caller.session:
        return ""
    role = word(lang, f"access.role_{caller.role}")
    # styled inline: the bar goes on pages with style sheets of their own (the fleet, a run)
    return (f'<div class="bar" id="signed-in" style="display:flex;gap:1em;align-items:center;justify-content:flex-end;'
            f'padding:.4em 1em;font:14px system-ui,sans-serif;border-bottom:1px solid #ddd"><span>{escape(word(lang, "access.signed_in_as", name=caller.name, role=role))}'
            f'</span>{form_fields("/auth/logout", caller.csrf, word(lang, "access.sign_out"))}</div>')


def with_bar(page: str, caller: Caller, lang: str) -> str:
    """``page`` (a whole HTML document) with the signed-in bar first in its body."""
    top = bar(caller, lang)
    if not top:
        return page
    at = page.find("<body")
    end = page.find(">", at) + 1 if at >= 0 else 0
    return page[:end] + top + page[end:]


def audit_page(entries: Iterable[dict[str, Any]], keep_days: int, caller: Caller, lang: str) -> str:
    heads = ("audit_when", "audit_who", "audit_action", "audit_target", "audit_site", "audit_detail")
    rows = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
        f"{e['at']:%Y-%m-%d %H:%M:%S}", e["actor"], e["action"], e["target"], e["site"], e["detail"])) + "</tr>"
        for e in entries)
    head = "".join(f"<th>{escape(word(lang, 'access.' + h))}</th>" for h in heads)
    table = (f"<table><tr>{head}</tr>{rows}</table>" if rows else f"<p>{escape(word(lang, 'access.audit_empty'))}</p>")
    title = word(lang, "access.audit_title")
    return shell(title, f"{bar(caller, lang)}<h1>{escape(title)}</h1>"
                        f"<p>{escape(word(lang, 'access.audit_retention', days=keep_days))}</p>{table}", lang)


def message_page(key: str, lang: str, action: str = "", label: str = "") -> str:
    """One sentence, and a link (sign in again) when ``action`` is given."""
    link = f'<p><a href="{escape(action)}">{escape(label)}</a></p>' if action else ""
    return shell(word(lang, key), f"<p>{escape(word(lang, key))}</p>{link}", lang)


def share_page(fleet: Any, figs: dict[str, Any], site: str, host_org: str, until: Any, lang: str) -> str:
    """One partner site's rooms, their verdicts and what they need, and the fixes that make
    most rooms ready: room names only, never a computer's name or an address (a room without
    a room label is shown without a name). ``fleet`` holds that site's runs only."""
    reqs = fleet.requirements
    rooms = {r.room for r in fleet.runs if r.room}
    rows = []
    for r in sorted(fleet.runs, key=lambda r: (r.room == "", r.room.casefold())):
        needs = sorted({reqs[i].text("label", lang) or reqs[i].metric for i, s in r.statuses.items() if s != "PASS"})
        shown = r.shown_verdict if r.silent else r.overall  # silent: not "ready as last seen"
        rows.append(f"<tr><td>{escape(r.room or '—')}</td><td class=\"{escape(shown)}\">"
                    f"{escape(word(lang, 'verdict_' + shown))}</td><td>{escape(', '.join(needs))}</td></tr>")
    fixes = []
    for a in figs.get("step5", {}).get("actions", []):
        title = word(lang, f"step5.action.{a.get('kind', 'other')}", subject=a.get("subject_title") or a.get("subject") or "")
        where = [w for w in a.get("where", []) if w in rooms]  # a room's name; never a host's
        count = word(lang, "access.share_fix_rooms", n=int(a.get("units") or 0))
        fix = f" — {escape(a['fix'])}" if a.get("fix") else ""
        fixes.append(f"<li><strong>{escape(title)}</strong>{fix} ({escape(count)}"
                     f"{': ' + escape(', '.join(where)) if where else ''})</li>")
    heads = "".join(f"<th>{escape(word(lang, 'access.' + k))}</th>" for k in ("share_room", "share_verdict", "share_needs"))
    title = word(lang, "access.share_title", site=site)
    body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(word(lang, 'access.share_intro', host=host_org))}</p>"]
    if until is not None:
        body.append(f"<p>{escape(word(lang, 'access.share_until', when=f'{until:%Y-%m-%d %H:%M} UTC'))}</p>")
    if rows:
        body.append(f"<h2>{escape(word(lang, 'access.share_rooms'))}</h2><table><tr>{heads}</tr>{''.join(rows)}</table>")
        if fixes:
            body.append(f"<h2>{escape(word(lang, 'access.share_fixes'))}</h2><ol>{''.join(fixes)}</ol>")
    else:
        body.append(f"<p>{escape(word(lang, 'access.share_none'))}</p>")
    return shell(title, "".join(body), lang)


def links_page(caller: Caller, links: list[Any], sites: list[str] | None, made: str, lang: str) -> str:
    """Share links of the sites ``caller`` manages, a form to make one (``sites``: the choice;
    None: any site, typed), and a revoke button each; ``made``: a link just made, shown once."""
    rows = "".join(
        f"<tr><td>{t.id}</td><td>{escape(t.site)}</td><td>{escape(t.hint)}…</td>"
        f"<td>{escape(f'{t.expires:%Y-%m-%d %H:%M}' if t.expires else '—')}</td>"
        f"<td>{form_fields('/admin/links', caller.csrf, word(lang, 'access.links_revoke'), action='revoke', id=str(t.id))}</td></tr>"
        for t in links)
    heads = "".join(f"<th>{escape(word(lang, 'access.' + k))}</th>"
                    for k in ("links_id", "audit_site", "links_start", "links_until", "links_revoke"))
    table = f"<table><tr>{heads}</tr>{rows}</table>" if rows else f"<p>{escape(word(lang, 'access.links_none'))}</p>"
    if sites is None:
        choose = '<input name="site" required maxlength="200">'
    else:
        choose = '<select name="site">' + "".join(f"<option>{escape(x)}</option>" for x in sites) + "</select>"
    new = (f'<form method="post" action="/admin/links"><input type="hidden" name="csrf" value="{escape(caller.csrf)}">'
           f'<input type="hidden" name="action" value="add"><label>{escape(word(lang, "access.audit_site"))} {choose}</label> '
           f'<label>{escape(word(lang, "access.links_days"))} <input name="days" type="number" min="1" max="365" value="30"></label> '
           f'<button type="submit">{escape(word(lang, "access.links_add"))}</button></form>')
    shown = f'<p id="new-link"><strong>{escape(word(lang, "access.links_made"))}</strong> <code>{escape(made)}</code></p>' if made else ""
    title = word(lang, "access.links_title")
    return shell(title, f"{bar(caller, lang)}<h1>{escape(title)}</h1>{shown}{table}<h2>{escape(word(lang, 'access.links_add'))}</h2>{new}", lang)


def form_fields(target: str, csrf: str, label: str, **fields: str) -> str:
    """A POST form to ``target`` with the CSRF token and ``fields`` hidden, one button."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    return (f'<form method="post" action="{escape(target)}" style="margin:0"><input type="hidden" name="csrf" '
            f'value="{escape(csrf)}">{hidden}<button type="submit">{escape(label)}</button></form>')
