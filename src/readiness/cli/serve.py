"""``readiness serve``: the site server (measurement endpoints, self-test page, with ``--db`` the
collector), and ``serve token`` for upload tokens, site links and read tokens. Options are parsed
here; ``readiness.service.build(options).run()`` does the rest."""

from __future__ import annotations

import sys

import click

from readiness.cli.common import DB_ENV, DB_OPTION, PORT, Finite, fail, message_lang, open_store, span_seconds

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


@click.group(invoke_without_command=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--http-port", type=PORT, default=8080, show_default=True, help="TCP port of the bandwidth endpoints.")
@click.option("--stun-port", type=PORT, default=3478, show_default=True, help="UDP port of the STUN responder.")
@click.option("--max-mb", type=Finite(0.001, 1e6), default=256.0, show_default=True, help="Largest transfer per request, MB.")
@click.option("--max-transfers", type=click.IntRange(1, 10000), default=16, show_default=True, help="Transfers served at once (one client gets at most half).")
@click.option("--max-connections", type=click.IntRange(1, 100000), default=256, show_default=True, help="Open connections at once (one client gets at most an eighth).")
@click.option("--timeout", type=Finite(0.1, 3600), default=10.0, show_default=True, help="Drop a connection silent this long, or whose request headers take longer, seconds.")
@click.option("--max-seconds", type=Finite(0.1, 86400), default=30.0, show_default=True, help="Longest a single request may run, seconds.")
@click.option("--tls-cert", metavar="FILE", type=click.Path(dir_okay=False), help="Serve HTTPS with this certificate (PEM, chain included).")
@click.option("--tls-key", metavar="FILE", type=click.Path(dir_okay=False), help="The certificate's private key (PEM), if not in --tls-cert.")
@DB_OPTION
@click.option("--public-read", is_flag=True, help="With --db: let any machine read /fleet, /runs, /api/v1/fleet and /metrics (else: this machine, or a read token).")
@click.option("--requirements", "-r", "own_lists", metavar="FILE", multiple=True, type=click.Path(dir_okay=False), help="With --db: your organisation's requirement list (repeatable). /fleet and /runs show the label, reason, advice and source of a requirement from your lists or the shipped profiles, never an upload's own; an upload's texts for a requirement no list holds (another bound on the same metric included) are shown marked as sent by the agent.")
@click.option("--trusted-proxy", "trusted_proxies", metavar="ADDR|CIDR", multiple=True, help="A reverse proxy in front of this server (repeatable; default none): from it, X-Forwarded-For or Forwarded names the client, for the rate limits, the logs and this-machine reads. A request it forwards without naming the client is not this machine's. Give the proxy a source address of its own (nginx: proxy_bind 127.0.0.2).")
@click.option("--keep-days", type=click.IntRange(1, 36500), default=400, show_default=True, help="Prune results older than this: the self-test page's results and reports in --results-dir, and with --db the database (each room's newest run and newest result per check stay; browser self-tests go by age).")
@click.option("--max-upload-mb", type=Finite(0.01, 64), default=8.0, show_default=True, help="With --db: largest result accepted, MB.")
@click.option("--ingest-workers", type=click.IntRange(0, 64), default=None, help="With --db: processes checking uploads, and with them one that commits them (default: one per CPU when there are several; 0: both in the server process).")
@click.option("--results-dir", metavar="DIR", default="readiness-results", show_default=True, type=click.Path(file_okay=False), help="Where the self-test page's results and reports are stored.")
@click.option("--access", "access_file", metavar="FILE", type=click.Path(dir_okay=False), help="With --db: who may see what (TOML: sign-in with OpenID Connect, roles per site, the audit log's retention; see the README).")
@click.option("--alerts", "alerts_file", metavar="FILE", type=click.Path(dir_okay=False), help="With --db: alert rules and channels (TOML: email, webhook, Teams, Slack; rules, silence windows, language; see the README). Checked whole at startup.")
@click.option("--org", metavar="NAME", default="", help="Your organisation's name: the self-test page tells partners it keeps their result (else: \"the organisation that sent you this link\").")
@click.option("--not-reporting-after", "not_reporting_after", metavar="SPAN", default="3d", show_default=True, help="With --db: a room with no result for longer than this is \"not reporting\" on /fleet and /metrics (a fault, not ready as last seen): 30m, 12h, 3d, 1w (units s, m, h, d, w).")
@click.option("--print-unit", is_flag=True, help="Print a hardened systemd unit that runs this server with the options given, and exit.")
@click.pass_context
def serve(ctx: click.Context, host: str, http_port: int, stun_port: int, max_mb: float, max_transfers: int,
          max_connections: int, timeout: float, max_seconds: float, tls_cert: str | None, tls_key: str | None,
          results_dir: str, db_url: str | None, public_read: bool, keep_days: int, max_upload_mb: float,
          ingest_workers: int | None, access_file: str | None, print_unit: bool, trusted_proxies: tuple[str, ...],
          own_lists: tuple[str, ...], org: str, alerts_file: str | None, not_reporting_after: str) -> None:
    """Run a measurement server for your site: bandwidth endpoints, a STUN responder and the self-test page.

    GET /__down?bytes=N and POST /__up (as Cloudflare's speed test), GET /__info, and STUN on
    UDP. Point clients at it with `readiness run --server http://HOST:PORT`. People without the
    agent open https://HOST:PORT/ in a browser (?profile=NAME, ?lang=sv, ?site=…&room=…; browsers
    allow the camera only over HTTPS, see --tls-cert): the page measures what a browser can, and
    its results go to --results-dir. Ctrl-C stops it.

    With --db it also collects: agents upload to POST /api/v1/results (a site's upload token,
    see `readiness serve token add`), and /fleet, /runs/ID, /api/v1/fleet and /metrics show
    the live fleet from the database. The self-test page's results go in only when the page was
    opened with the site's link (?site=NAME&key=TOKEN, see `readiness serve token add --link`).
    A result that starts more than 10 minutes after it arrives (a computer's clock ahead) is
    refused (400 clock_ahead), so it cannot stay its room's newest result.
    """
    if ctx.invoked_subcommand is not None:
        return
    if print_unit:
        _print_unit(ctx)
        return
    if tls_key and not tls_cert:
        from readiness.cli.usage import bad_value

        raise bad_value("--tls-cert", "tls_cert_missing")
    try:
        from readiness.server.clients import parse_proxies
        from readiness.service import ServeOptions, ServiceError, build
    except ImportError as exc:
        fail(f"the measurement server is not available: {exc}")
    silent_after = span_seconds(not_reporting_after, "--not-reporting-after")
    try:
        proxies = parse_proxies(trusted_proxies)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from None
    opts = ServeOptions(host=host, http_port=http_port, stun_port=stun_port, max_mb=max_mb, max_transfers=max_transfers,
                        max_connections=max_connections, timeout=timeout, max_seconds=max_seconds, tls_cert=tls_cert,
                        tls_key=tls_key, results_dir=results_dir, db_url=db_url, public_read=public_read,
                        keep_days=keep_days, max_upload_mb=max_upload_mb, ingest_workers=ingest_workers,
                        trusted_proxies=tuple(proxies), own_lists=own_lists, org=org, access_file=access_file,
                        alerts_file=alerts_file, not_reporting_after=silent_after)
    try:
        site = build(opts, open_store=lambda url: open_store(url, create=True))
    except ServiceError as exc:
        fail(str(exc))
    sys.exit(site.run())


def _print_unit(ctx: click.Context) -> None:
    """``serve --print-unit``: the options typed (or set in the environment) become the unit's command."""
    import shutil
    from pathlib import Path

    from click.core import ParameterSource

    from readiness.collector.unit import UnitError, hidden_by_unit, program_path, unit_text
    from readiness.i18n.format import word
    from readiness.textsafe import terminal_text

    apart = {"print_unit", "db_url", "results_dir", "tls_cert", "tls_key"}
    options: list[tuple[str, str | None]] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in apart:
            continue
        if ctx.get_parameter_source(param.name) not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        value = ctx.params[param.name]
        if param.is_flag:
            if value:
                options.append((param.opts[0], None))
            continue
        for one in (value if param.multiple else (value,)):  # a repeatable option: once per value
            if one is None:
                continue
            if isinstance(param.type, click.Path):  # the unit runs in its own folder: paths absolute
                one = Path(one).expanduser().absolute()
            options.append((param.opts[0], str(one)))
    p = ctx.params
    try:
        program = program_path(sys.argv[0], shutil.which("readiness"))
        text = unit_text(str(program), options, p["db_url"],
                         str(Path(p["results_dir"]).expanduser().absolute())
                         if ctx.get_parameter_source("results_dir") == ParameterSource.COMMANDLINE else None,
                         [p["http_port"], p["stun_port"]], p["tls_cert"], p["tls_key"])
    except UnitError as exc:
        fail(exc.text(message_lang()))
    if hidden_by_unit(program):
        click.echo(terminal_text("readiness: " + word(message_lang(), "service_unit.warn_home", program=str(program))), err=True)
    click.echo(text, nl=False)


@serve.group("alerts")
def alerts_group() -> None:
    """Alerts (``serve --alerts FILE``): try the channels."""


@alerts_group.command("test")
@click.option("--alerts", "alerts_file", metavar="FILE", required=True, type=click.Path(dir_okay=False), help="The alert file the server is started with.")
def alerts_test(alerts_file: str) -> None:
    """Send a test message on every channel of the alert file; one line per channel: sent, or failed and why."""
    try:
        from readiness.collector.alertconfig import AlertConfigError, load_alerts
        from readiness.collector.notify import send_test
    except ImportError as exc:
        fail(f"alerts need the server extra: {exc}")
    try:
        cfg = load_alerts(alerts_file)
    except AlertConfigError as exc:
        fail(str(exc))
    if not cfg.channels:
        fail(f"{alerts_file}: no channels to test ([channel.NAME])")
    failed = 0
    for name, why in send_test(cfg):
        kind = cfg.channels[name].kind
        if why is None:
            click.echo(f"{name} ({kind}): sent")
        else:
            failed += 1
            click.echo(f"{name} ({kind}): failed: {why}")
    sys.exit(1 if failed else 0)


@serve.group("db")
def db_group() -> None:
    """The collector's database: backups (SQLite; PostgreSQL: pg_dump, see the README), and the
    way back to an older release's schema."""


@db_group.command("backup")
@DB_OPTION
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
def db_backup(db_url: str | None, file: str) -> None:
    """Copy the SQLite database to FILE while the server runs (SQLite's online backup)."""
    if not db_url:
        fail(f"give the collector's database: --db URL or {DB_ENV}")
    from readiness.collector.backup import BackupError, backup_sqlite

    try:
        runs = backup_sqlite(db_url, file)
    except BackupError as exc:
        fail(str(exc))
    click.echo(f"backed up {runs} run{'s' if runs != 1 else ''} to {file}", err=True)


@db_group.command("downgrade")
@DB_OPTION
@click.argument("revision", metavar="REVISION")
@click.option("--yes", is_flag=True, help="Do it; without it, only say what would be undone.")
def db_downgrade(db_url: str | None, revision: str, yes: bool) -> None:
    """Take the database's schema back to REVISION, for an older release of readiness.

    An older release refuses a database of a newer schema ("this readiness knows up to
    REVISION"). Stop every server on the database, back it up, run this with that revision,
    then start the older release. Without --yes nothing changes: the steps are listed.
    """
    if not db_url:
        fail(f"give the collector's database: --db URL or {DB_ENV}")
    try:
        from readiness.collector.engine import StoreError, Unavailable
        from readiness.collector.migrations import revisions
        from readiness.collector.store import Store
    except ImportError as exc:
        fail(f"the collector needs the server extra: pip install 'readiness[server]' ({exc})")
    known = revisions()
    ids = [rev for rev, _ in known]
    if revision not in ids:
        fail(f"no schema revision {revision!r}: this readiness knows {', '.join(ids)}")
    try:
        store = Store(db_url, create=False)
    except StoreError as exc:
        fail(str(exc))
    try:
        now = store.revision()
        if now is None:
            fail("the database holds no readiness data yet: nothing to take back")
        if now not in ids:
            fail(f"the database has schema {now}, newer than this readiness knows ({ids[-1]}): downgrade it with the "
                 "release that made it")
        if ids.index(revision) > ids.index(now):
            fail(f"{revision} is newer than the database's schema {now}: `readiness serve --db URL` upgrades it")
        steps = [(rev, what) for rev, what in reversed(known) if ids.index(revision) < ids.index(rev) <= ids.index(now)]
        if not steps:
            click.echo(f"the database has schema {now} already", err=True)
            return
        for rev, what in steps:
            click.echo(f"undo {rev}: {what}")
        if not yes:
            click.echo(f"nothing changed: run again with --yes to take the schema from {now} to {revision} (stop every "
                       "server on this database and back it up first)", err=True)
            return
        store.downgrade(revision)
        click.echo(f"the database has schema {store.revision()} now", err=True)
    except Unavailable as exc:
        fail(str(exc))
    finally:
        store.close()


@serve.command("audit")
@DB_OPTION
@click.option("--since", metavar="SPAN", help="Only entries of the last SPAN: 30m, 12h, 30d, 2w (units s, m, h, d, w).")
@click.option("--limit", type=click.IntRange(1, 1000000), default=1000, show_default=True, help="At most this many entries, newest first.")
def audit_list(db_url: str | None, since: str | None, limit: int) -> None:
    """List the audit log, newest first: sign-ins, tokens and links made and revoked, role changes, exports."""
    from readiness.collector.access import parse_span
    from readiness.collector.engine import Unavailable, utcnow

    try:
        start = utcnow() - parse_span(since) if since is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    store = open_store(db_url, create=False)
    try:
        entries = store.list_audit(limit, start)
    except Unavailable as exc:
        fail(str(exc))
    for e in entries:
        click.echo("  ".join(x for x in (f"{e['at']:%Y-%m-%d %H:%M:%S}Z", e["actor"], e["action"], e["target"],
                                         f"site {e['site']}" if e["site"] else "", e["detail"]) if x))
    if not entries:
        click.echo("no audit log entries", err=True)


@serve.group("token")
def token_group() -> None:
    """Upload tokens (one per site), site links for the self-test page and read tokens for the collector."""


@token_group.command("add")
@DB_OPTION
@click.option("--site", metavar="NAME", help="The site this upload token (or site link) submits results for (as agents label it with --site); with --read: the one site it reads.")
@click.option("--read", "read_token", is_flag=True, help="A read token instead (fleet page, API and /metrics from other machines).")
@click.option("--link", is_flag=True, help="A site link instead: the self-test page opened with it puts that site's browser results into the database.")
@click.option("--share", is_flag=True, help="A partner share link instead: /share/TOKEN shows that site's verdicts and fixes, without host names or addresses (give --expires).")
@click.option("--base-url", metavar="URL", help="With --link: the server's address as people reach it (https://HOST:PORT), to print the whole link.")
@click.option("--expires", metavar="SPAN", help="The token stops working after this long: 30m, 12h, 30d, 2w (units s, m, h, d, w; default: until revoked).")
def token_add(db_url: str | None, site: str | None, read_token: bool, link: bool, share: bool, base_url: str | None,
              expires: str | None) -> None:
    """Create a token and print it once (only its hash is kept).

    An upload token (--site NAME) lets that site's agents upload; a site link (--link --site NAME)
    lets browser self-test results labelled NAME in; a read token (--read) reads the fleet, and
    with --site NAME only that site.
    """
    from readiness.cli.usage import bad_value, usage_error

    if read_token and link:
        raise usage_error("read_or_link")
    if share and (read_token or link):
        raise usage_error("one_token_kind")
    if link and not site:
        fail("a site link needs the site it is for: give --site NAME")
    if share and not site:
        fail("a share link shows one partner site: give --site NAME")
    if not read_token and not site:
        raise usage_error("site_or_read")
    from readiness.collector.access import parse_span

    try:
        span = parse_span(expires) if expires is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    if base_url is not None and not (link or share):
        raise usage_error("base_url_with_link")
    import re

    base = (base_url or "").strip().rstrip("/")
    if base_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base):
        raise bad_value("--base-url", "base_url_form")
    site = (site or "").strip()
    if len(site) > 200 or not site and not read_token:
        raise bad_value("--site", "site_name_length", most=200)
    from readiness.collector.engine import Unavailable, utcnow

    store = open_store(db_url, create=True)
    kind = "read" if read_token else "link" if link else "share" if share else "upload"
    try:
        tok, secret = store.add_token(kind, site, utcnow() + span if span else None)
        store.add_audit("command line", "token_add", f"{kind} token {tok.id}", site,
                        f"expires {tok.expires:%Y-%m-%d %H:%M}Z" if tok.expires else "")
    except Unavailable as exc:
        fail(str(exc))
    if share:
        until = f"until {tok.expires:%Y-%m-%d %H:%M} UTC" if tok.expires else "until revoked"
        click.echo(f"New share link for partner site {site!r} (id {tok.id}), works {until}, shown only now: "
                   f"send it to the partner; revoke it with `readiness serve token revoke {tok.id}`.", err=True)
        click.echo(f"{base}/share/{secret}", err=True)
    elif read_token:
        click.echo(f"New read token (id {tok.id}), shown only now: give it as 'Authorization: Bearer TOKEN' "
                   "(Prometheus: authorization.credentials) to read from other machines.", err=True)
    elif link:
        from urllib.parse import urlencode

        click.echo(f"New site link for site {site!r} (id {tok.id}), shown only now: send people of that site the "
                   f"self-test page's address with this ending; their results then go into the database.", err=True)
        click.echo(f"{base}/?{urlencode({'site': site, 'key': secret})}", err=True)
    else:
        click.echo(f"New upload token for site {site!r} (id {tok.id}), shown only now: put it in a file on that "
                   "site's agents (readiness run --token-file FILE).", err=True)
    click.echo(secret)


@token_group.command("list")
@DB_OPTION
def token_list(db_url: str | None) -> None:
    """List tokens: id, kind, first characters, created, state (live, expires, revoked, expired), last use, site."""
    from readiness.collector.engine import Unavailable

    store = open_store(db_url, create=False)
    try:
        rows = store.list_tokens()
    except Unavailable as exc:
        fail(str(exc))
    for t in rows:
        state = (f"expired {t.expires:%Y-%m-%d %H:%M}Z" if t.expired else f"revoked {t.revoked:%Y-%m-%d %H:%M}Z"
                 if t.revoked else f"live until {t.expires:%Y-%m-%d %H:%M}Z" if t.expires else "live")
        used = f"used {t.last_used:%Y-%m-%d %H:%M}Z" if t.last_used else "never used"
        click.echo(f"{t.id:>4}  {t.kind:6}  {t.hint}…  created {t.created:%Y-%m-%d %H:%M}Z  {state}  {used}  {t.site}")
    if not rows:
        click.echo("no tokens yet (readiness serve token add --site NAME)", err=True)


@token_group.command("revoke")
@DB_OPTION
@click.argument("token_id", metavar="[ID]", required=False, type=click.IntRange(1))
@click.option("--site", metavar="NAME", help="Revoke every upload token and site link of this site.")
def token_revoke(db_url: str | None, token_id: int | None, site: str | None) -> None:
    """Revoke a token by its id (see `token list`), or all upload tokens and site links of a site."""
    if (token_id is None) == (site is None):
        from readiness.cli.usage import usage_error

        raise usage_error("token_id_or_site")
    from readiness.collector.engine import Unavailable

    store = open_store(db_url, create=False)
    try:
        gone = store.revoke(token_id=token_id, site=site)
        for t in gone:
            store.add_audit("command line", "token_revoke", f"{t.kind} token {t.id}", t.site)
    except Unavailable as exc:
        fail(str(exc))
    n = len(gone)
    if n == 0:
        fail("no live token matched; nothing revoked (see `readiness serve token list`)")
    click.echo(f"revoked {n} token{'s' if n != 1 else ''}; results sent with {'them' if n != 1 else 'it'} are not taken in from now on")
