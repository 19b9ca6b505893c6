"""``readiness serve`` assembled: the measurement endpoints (``server.measure``), the self-test
page (``selftest``), and with a database the collector (``collector``), with the retention
thread that prunes both. One call: ``build(options).run()``.

Sits above server, collector and selftest, below the CLI, which only parses the options into a
:class:`ServeOptions` and turns a :class:`ServiceError` into its one-line error.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from readiness.atomic import probe_writable
from readiness.judge.requirements import ProfileError
from readiness.judge.wording import OwnWords, own_lists
from readiness.plugins import load_plugins
from readiness.selftest.web import SelfTest
from readiness.server.http import log, tls_context
from readiness.server.measure import run_server

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")
# the start's slower warm-ups (the regressions pass, the plotting library) wait for a first /fleet
# page, at most this long
WARM_AFTER_S = 10.0


class ServiceError(Exception):
    """The server cannot start as asked (a certificate, a folder, the database); ``str()`` says why."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "0.0.0.0"
    http_port: int = 8080
    stun_port: int = 3478
    max_mb: float = 256.0
    max_transfers: int = 16
    max_connections: int = 256
    timeout: float = 10.0
    max_seconds: float = 30.0
    tls_cert: str | None = None
    tls_key: str | None = None
    results_dir: str = "readiness-results"
    db_url: str | None = None
    public_read: bool = False
    keep_days: int = 400
    max_upload_mb: float = 8.0
    ingest_workers: int | None = None
    trusted_proxies: tuple[Any, ...] = ()  # networks (ipaddress) whose forwarding headers name the client
    own_lists: tuple[str, ...] = ()  # the organisation's requirement lists: the words /fleet and /runs show
    org: str = ""  # the organisation's name: the self-test page says who keeps a partner's result
    access_file: str | None = None  # roles, sign-in and the audit log's retention (``collector.access``)
    alerts_file: str | None = None  # alert rules and channels (``collector.alertconfig``)
    not_reporting_after: float = 3 * 86400.0  # seconds without a result before a room is "not reporting"


class Site:
    """One ``readiness serve`` process's parts, built and checked; :meth:`run` serves until stopped."""

    def __init__(self, opts: ServeOptions, ssl_context: Any, page: SelfTest, collector: Any, routes: list[Any]) -> None:
        self.opts, self.ssl_context, self.page, self.collector, self.routes = opts, ssl_context, page, collector, routes
        self._stopping = threading.Event()

    def _retention(self) -> None:  # now, then every hour
        keep = timedelta(days=self.opts.keep_days)
        while True:
            if n := self.page.prune(keep.total_seconds()):
                log(f"retention: deleted {n} self-test results and reports older than {self.opts.keep_days} days "
                    f"from {self.page.results_dir}")
            if self.collector is not None:
                self.collector.prune(keep)
            if self._stopping.wait(3600.0):
                return

    def _preload_plots(self) -> None:
        """The first room history page after a start would import matplotlib and build its font
        cache (~2 s); done here, in the background, once the server listens."""
        def preload() -> None:
            # not beside a first /fleet page's build (two seconds of CPU for the same interpreter)
            self.collector.view.served.wait(WARM_AFTER_S)
            from readiness.render import plots  # the server extra: matplotlib, imported in this thread

            started = time.monotonic()
            try:
                plots.warm()
            except plots.PlotsUnavailable:
                return  # the history pages say so themselves
            log(f"history plots: ready ({time.monotonic() - started:.1f} s to load matplotlib and its fonts)")

        threading.Thread(target=preload, daemon=True, name="plots-preload").start()

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; the process exit code."""
        o = self.opts
        threading.Thread(target=self._retention, daemon=True, name="retention").start()
        alerts = getattr(self.collector, "alerts", None)
        if alerts is not None:
            alerts.start()
        try:
            return run_server(host=o.host, http_port=o.http_port, stun_port=o.stun_port, ssl_context=self.ssl_context,
                              max_bytes=int(o.max_mb * 1e6), max_transfers=o.max_transfers,
                              max_connections=o.max_connections, idle_timeout_s=o.timeout,
                              max_request_s=o.max_seconds, trusted_proxies=o.trusted_proxies,
                              routes=[*self.routes, *self.page.routes()],
                              on_listening=self._preload_plots if self.collector is not None else None)
        finally:
            self.page.close()
            self._stopping.set()
            if alerts is not None:
                alerts.stop()


def _tls(opts: ServeOptions) -> Any:
    if not opts.tls_cert:
        return None
    import ssl

    try:
        return tls_context(opts.tls_cert, opts.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ServiceError(f"cannot use {opts.tls_cert}{' and ' + opts.tls_key if opts.tls_key else ''} for TLS: "
                           f"{getattr(exc, 'strerror', None) or getattr(exc, 'reason', None) or exc}") from None


def _installed() -> tuple[Any, Any]:
    plugins = load_plugins()
    return plugins.checks, plugins.broken


def _collector(opts: ServeOptions, open_store: Callable[[str], Any], tls: bool) -> tuple[Any, Any]:
    """The collector and the self-test page's hook into it (results with a site link)."""
    from readiness.collector.http import Collector  # the server extra: only with --db
    from readiness.collector.links import collect_page_result  # the server extra: only with --db
    from readiness.collector.engine import redacted  # the server extra: only with --db
    from readiness.collector.access import AccessConfig, AccessError, load_config  # the server extra: only with --db

    try:
        access = load_config(opts.access_file) if opts.access_file else AccessConfig()
    except AccessError as exc:
        raise ServiceError(str(exc)) from None
    alert_cfg = None
    if opts.alerts_file:
        from readiness.collector.alertconfig import AlertConfigError, load_alerts  # the server extra: only with --db

        try:
            alert_cfg = load_alerts(opts.alerts_file)
        except AlertConfigError as exc:
            raise ServiceError(str(exc)) from None
    try:
        words = OwnWords(own_lists(opts.own_lists, *_installed()))
    except ProfileError as exc:
        raise ServiceError(str(exc)) from None
    store = open_store(opts.db_url)
    workers = opts.ingest_workers
    if workers is None:
        workers = n if (n := os.cpu_count() or 1) > 1 else 0
    collector = Collector(store, public_read=opts.public_read, max_body=int(opts.max_upload_mb * 1e6), log=log,
                          workers=workers, words=words, access=access, tls=tls,
                          not_reporting_after=opts.not_reporting_after)
    collector.org = opts.org
    if alert_cfg is not None:
        from readiness.collector.alerts import Alerts  # the server extra: only with --alerts
        from readiness.collector.notify import send  # the server extra: only with --alerts

        collector.alerts = Alerts(store, alert_cfg, opts.not_reporting_after, send, log)
        collector.health.outbox = collector.alerts.depth
        # suspected regressions (collector.history's pass over the rooms' changes) open and clear alerts too
        collector.alerts.regression_source = lambda: collector.changes.keyed(alert_cfg.language)
        log(f"alerts: {len(alert_cfg.rules)} rules, channels {', '.join(alert_cfg.channels) or 'none'} "
            f"({opts.alerts_file}); events of one site and cause within {alert_cfg.group_within_s:g} s go in one message")
    if collector.checker is not None:
        store.use_writer()  # the group commit too in a process of its own (``collector.groupcommit``)
        collector.checker.warm()
    collector.view.warm()
    # the first pass over the rooms' changes (the suspected regressions, ``collector.history``;
    # about a second of CPU for 10 000 rooms) starts once a first /fleet page is made, or
    # WARM_AFTER_S after the start: not inside that page's build, where its thread took the
    # interpreter from it
    collector.changes.hold(collector.view.served, WARM_AFTER_S)

    def collect(body: bytes, site: str, key: str) -> str | None:
        return collect_page_result(store, body, site, key, collector.max_body, collector.checker)

    reading = "anywhere" if opts.public_read else "this machine or with a read token"
    if access.sign_in is not None:
        reading += f", and people signed in with {access.sign_in.issuer}"
    log(f"collecting into {redacted(opts.db_url)}; reading from {reading}; "
        f"results older than {opts.keep_days} days are pruned")
    if opts.trusted_proxies:
        log(f"trusting X-Forwarded-For and Forwarded from {', '.join(map(str, opts.trusted_proxies))} only")
    if not tls and opts.host not in LOCAL_HOSTS:
        log("warning: upload tokens cross the network in clear without --tls-cert/--tls-key "
            "(or a reverse proxy that terminates TLS in front of this server)")
    return collector, collect


def build(opts: ServeOptions, open_store: Callable[[str], Any] | None = None) -> Site:
    """Every part of the server, checked before it listens: TLS files, the results folder, the
    database (``open_store(url)`` makes or upgrades it). Raises :class:`ServiceError`."""
    ssl_context = _tls(opts)
    folder = Path(opts.results_dir).expanduser()
    try:
        probe_writable(folder)
    except OSError as exc:
        raise ServiceError(f"cannot store self-test results in {folder}: {exc.strerror or exc}. "
                           "Choose another folder with --results-dir.") from None
    collector, collect, routes = None, None, []
    if opts.alerts_file and not opts.db_url:
        raise ServiceError("--alerts needs the collector's database: give --db URL too")
    if opts.db_url:
        if open_store is None:
            raise ServiceError("a database was given but no way to open it")
        collector, collect = _collector(opts, open_store, ssl_context is not None)
        routes = collector.routes()
    return Site(opts, ssl_context, SelfTest(folder, collect=collect, org=opts.org), collector, routes)
