"""The collector's reads for the fleet view, a room's history and the fleet over time: streamed
where they can be large. A part of :class:`readiness.collector.store.Store`, which holds the
engine (``engine``, ``dialect``, ``_guard``) these methods use."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Iterator

from sqlalchemy import Float, and_, cast, func, select

from readiness.collector.engine import aware
from readiness.collector.tables import (BROWSER_KEYS, day_counts, fleet_records, latest, requirements, results,
                                        room_days, run_history, summaries)


class Reads:
    """Read-only queries of :class:`~readiness.collector.store.Store`."""

    engine: Any
    dialect: str
    _guard: Any  # the store's: database errors as StoreError / Unavailable

    def room_days(self, since: str, sites: frozenset[str] | None = None, batch: int = 10000,
                  keys: list[str] | None = None) -> Iterator[tuple[str, str, float, str | None]]:
        """Each room's state per day from ``since`` (YYYY-MM-DD) on, per room and oldest day
        first, as ``fleet.compliance`` reads them: (room key, day, start in seconds since the
        epoch, verdict); of ``sites`` only, when given. Each room's newest run before ``since``
        comes first, as the compliance needs it: for a room whose newest run is older than
        ``since`` (silent all along, it still counts) and for one that reported again after a
        silence longer than ``since`` reaches back (its silent days count as not reporting, not
        as before its first run). Streamed (never all in memory): 10 000 rooms x 90 days are
        900 000 rows, so they come through the driver's own cursor (no row objects, no date
        parsing in Python: the database turns the start into seconds) and, on PostgreSQL, a
        server-side cursor. ``keys``: of those rooms only."""
        if self.dialect == "postgresql":
            def epoch(col: Any) -> Any:
                return cast(func.extract("epoch", col), Float)
            old_day = func.to_char(func.timezone("UTC", results.c.started), "YYYY-MM-DD")
        else:  # SQLite holds the time as text; its julianday() reads it in C
            def epoch(col: Any) -> Any:
                return (func.julianday(col) - 2440587.5) * 86400.0
            old_day = func.substr(results.c.started, 1, 10)  # the UTC time as text: its day first
        start = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
        silent = (select(results.c.room_key, old_day, epoch(results.c.started), results.c.verdict)
                  .select_from(latest.join(results, results.c.run_id == latest.c.run_id))
                  .where(latest.c.check_name == "", latest.c.started < start))
        window = select(room_days.c.room_key, room_days.c.day, epoch(room_days.c.started), room_days.c.verdict
                        ).where(room_days.c.day >= since)
        # the rooms with days from ``since`` on, and each one's newest day before it: one probe
        # of the (room, day) key per room, not a scan of the older days
        seen = select(room_days.c.room_key).where(room_days.c.day >= since)
        if sites is not None:
            silent = silent.where(results.c.site.in_(sites))
            window = window.where(room_days.c.site.in_(sites))
            seen = seen.where(room_days.c.site.in_(sites))
        if keys is not None:
            silent = silent.where(latest.c.room_key.in_(keys))
            window = window.where(room_days.c.room_key.in_(keys))
            seen = seen.where(room_days.c.room_key.in_(keys))
        seen = seen.distinct().subquery("seen")
        earlier = room_days.alias("earlier")
        before = (select(func.max(earlier.c.day)).where(earlier.c.room_key == seen.c.room_key, earlier.c.day < since)
                  .scalar_subquery())
        newest = select(seen.c.room_key.label("key"), before.label("day")).subquery("newest")
        back = room_days.alias("back")
        seed = (select(back.c.room_key, back.c.day, epoch(back.c.started), back.c.verdict)
                .join(newest, and_(back.c.room_key == newest.c.key, back.c.day == newest.c.day)))
        window = window.order_by(room_days.c.room_key, room_days.c.day)  # the key's order: no sort
        with self._guard(), self.engine.connect() as conn:
            for row in self._raw_rows(conn, silent, batch, "room_days_silent"):
                if not row[0].startswith(BROWSER_KEYS):
                    yield row
            # at most a row per room: kept, and each put before its room's days
            first = {row[0]: row for row in self._raw_rows(conn, seed, batch, "room_days_seed")}
            current = None
            for row in self._raw_rows(conn, window, batch, "room_days"):
                if row[0] != current:
                    current = row[0]
                    if current in first:
                        yield first[current]
                yield row

    def _raw_rows(self, conn: Any, query: Any, batch: int, name: str) -> Iterator[Any]:
        """The rows of ``query`` as the driver gives them, through its own cursor (no row
        objects: a tenth of the time for 10 000 rows), on PostgreSQL a server-side one (``name``)."""
        compiled = query.compile(dialect=self.engine.dialect, compile_kwargs={"render_postcompile": True})
        params: Any = ([compiled.params[k] for k in compiled.positiontup or ()] if compiled.positional
                       else compiled.params)
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor(name=name) if self.dialect == "postgresql" else raw.cursor()
        try:
            cursor.execute(str(compiled), params)
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            cursor.close()

    def room_labels(self, sites: frozenset[str] | None = None, keys: list[str] | None = None
                    ) -> dict[str, tuple[str, str, str]]:
        """Each room's (or computer's) site, room and hostname, as its newest run says them
        (``keys``: of those rooms only)."""
        query = (select(latest.c.room_key, results.c.site, results.c.room, results.c.hostname)
                 .select_from(latest.join(results, results.c.run_id == latest.c.run_id))
                 .where(latest.c.check_name == ""))
        if sites is not None:
            query = query.where(results.c.site.in_(sites))
        if keys is not None:
            query = query.where(latest.c.room_key.in_(keys))
        with self._guard(), self.engine.connect() as conn:
            return {key: (site, room, host) for key, site, room, host in self._raw_rows(conn, query, 5000, "labels")}

    def count(self, sites: frozenset[str] | None = None) -> int:
        """Runs stored (of ``sites`` only, when given)."""
        query = select(func.count()).select_from(results)
        if sites is not None:
            query = query.where(results.c.site.in_(sites))
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def document(self, run_id: str) -> dict[str, Any] | None:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(select(results.c.document).where(results.c.run_id == run_id)).scalar()

    def site_of(self, run_id: str) -> str | None:
        """The site a run was stored for, or None when there is no such run."""
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(select(results.c.site).where(results.c.run_id == run_id)).scalar()

    def documents(self, all_runs: bool = False, batch: int = 500) -> Iterator[tuple[str, dict[str, Any]]]:
        """(run id, document) oldest first, streamed in batches (never all in memory): every
        run, or only the runs the fleet state holds (newest per room and per room and check)."""
        query = select(results.c.run_id, results.c.document)
        if not all_runs:
            query = query.where(results.c.run_id.in_(select(latest.c.run_id)))
        query = query.order_by(results.c.started, results.c.run_id)
        with self._guard(), self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield row[0], row[1]

    def summaries(self, batch: int = 1000, part: tuple[str | None, str | None] = (None, None)
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(run id, summary) of the runs the fleet state holds (newest per room and per room and
        check), in run id order (the order of the index: sorting by time copied every summary
        into a temporary tree, 0.1 s per 1 000), streamed in batches: the summary, or the whole document of a row
        stored before summaries were kept. Judgement items point to ``requirement_texts``.
        ``part``: only run ids from its first (inclusive) to its second (exclusive); None: open."""
        held = select(latest.c.run_id).distinct()
        lo, hi = part  # the part bounds the subquery too: its index is then searched, not scanned
        if lo is not None:
            held = held.where(latest.c.run_id >= lo)
        if hi is not None:
            held = held.where(latest.c.run_id < hi)
        query = (select(results.c.run_id, func.coalesce(summaries.c.summary, results.c.document).label("doc"))
                 .select_from(results.outerjoin(summaries, summaries.c.run_id == results.c.run_id))
                 .where(results.c.run_id.in_(held)).order_by(results.c.run_id))
        with self._guard(), self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield row[0], row[1]

    def room_runs(self, key: str, limit: int = 5000) -> list[tuple[str, datetime, str, dict[str, Any]]]:
        """(run id, start, site, history record) of one room's (or computer's) stored runs by
        ``room_key``, oldest first, at most the newest ``limit`` (``run_history``: a few hundred
        bytes each; 730 runs read in ~10 ms, bench/history.py)."""
        query = (select(run_history.c.run_id, run_history.c.started, run_history.c.site, run_history.c.record)
                 .where(run_history.c.room_key == key)
                 .order_by(run_history.c.started.desc(), run_history.c.run_id.desc()).limit(limit))
        with self._guard(), self.engine.connect() as conn:
            rows = [(r[0], aware(r[1]), r[2], r[3]) for r in conn.execute(query)]
        rows.reverse()
        return rows

    def fleet_records(self, batch: int = 2000) -> Iterator[tuple[str, str | None]]:
        """(run id, record text or None) of each run the fleet state holds (``latest``), in run
        id order, streamed: the records kept at ingest (``fleetdb.record_of``); None for a run
        stored without one."""
        # the held runs as a list the database walks in run id order (SQLite: no sort of the
        # 10 000 records, 50 MB, in a temporary tree, as a join with a DISTINCT subquery needed)
        query = (select(results.c.run_id, fleet_records.c.record)
                 .select_from(results.outerjoin(fleet_records, fleet_records.c.run_id == results.c.run_id))
                 .where(results.c.run_id.in_(select(latest.c.run_id))).order_by(results.c.run_id))
        with self._guard(), self.engine.connect() as conn:
            yield from self._raw_rows(conn, query, batch, "fleet_records")

    def summary(self, run_id: str) -> Any:
        """One run's summary (``summaries``), or its whole document when it has none; None: no such run."""
        query = (select(func.coalesce(summaries.c.summary, results.c.document))
                 .select_from(results.outerjoin(summaries, summaries.c.run_id == results.c.run_id))
                 .where(results.c.run_id == run_id))
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def runs_since(self, since: datetime, batch: int = 1000) -> Iterator[tuple[str, str, datetime, str, dict[str, Any]]]:
        """(room key, run id, start, site, history record) of every run started since ``since``,
        by room and time (the fleet's suspected regressions read consecutive runs per room), streamed."""
        query = (select(run_history.c.room_key, run_history.c.run_id, run_history.c.started, run_history.c.site,
                        run_history.c.record)
                 .where(run_history.c.started >= since)
                 .order_by(run_history.c.room_key, run_history.c.started, run_history.c.run_id))
        with self._guard(), self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield row[0], row[1], aware(row[2]), row[3], row[4]

    def requirement_texts(self) -> dict[str, Any]:
        """Every stored requirement by digest (a few dozen)."""
        with self._guard(), self.engine.connect() as conn:
            return {d: r for d, r in conn.execute(select(requirements.c.digest, requirements.c.requirement))}

    def per_day(self, sites: frozenset[str] | None = None) -> dict[date, dict[str, int]]:
        """Runs per UTC day and verdict, over every stored run (the fleet trend): the
        ``day_counts`` rows ingest and retention keep (one per day and verdict, not one per run).
        Of ``sites`` only, when given: counted from the runs stored for them (``day_counts``
        holds no site), by the database (one row per day and verdict comes back)."""
        out: dict[date, dict[str, int]] = {}
        if sites is not None:
            return self._per_day_of(sites)
        query = select(day_counts.c.day, day_counts.c.verdict, day_counts.c.runs).where(day_counts.c.runs > 0)
        with self._guard(), self.engine.connect() as conn:
            for day, verdict, n in conn.execute(query):
                out.setdefault(date.fromisoformat(day), {})[verdict] = n
        return out

    def _per_day_of(self, sites: frozenset[str]) -> dict[date, dict[str, int]]:
        out: dict[date, dict[str, int]] = {}
        if self.dialect == "postgresql":
            day = func.date(func.timezone("UTC", results.c.started))
        else:  # SQLite holds the UTC time as text: its first ten characters are the day
            day = func.substr(results.c.started, 1, 10)
        query = (select(day.label("day"), results.c.verdict, func.count())
                 .where(results.c.verdict.is_not(None), results.c.site.in_(sites)).group_by(day, results.c.verdict))
        with self._guard(), self.engine.connect() as conn:
            for when, verdict, n in conn.execute(query):
                when = when if isinstance(when, date) else date.fromisoformat(str(when))
                out.setdefault(when, {})[verdict] = n
        return out

    def newest_per_site(self) -> dict[str, datetime]:
        """Each site's newest result (its start time)."""
        query = select(results.c.site, func.max(results.c.started)).group_by(results.c.site)
        with self._guard(), self.engine.connect() as conn:
            return {site: aware(when) for site, when in conn.execute(query)}

    def arrived_after(self, when: datetime) -> tuple[int, list[str]]:
        """Runs received after ``when`` (strictly): how many, and their rooms' keys (``room_key``)."""
        query = (select(results.c.room_key, func.count()).where(results.c.received > when)
                 .group_by(results.c.room_key))
        with self._guard(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return sum(n for _, n in rows), [key for key, _ in rows]

    def change_stamp(self) -> tuple[Any, ...]:
        """Changes whenever a run is stored or pruned (any collector process on this database)."""
        with self._guard(), self.engine.connect() as conn:
            return tuple(conn.execute(select(func.count(), func.max(results.c.received))).one())


