"""Ingest's group commit: many uploads stored in one transaction, one durable commit for all of
them, in a thread of the server (``Batcher``) or in a process of its own (``Writer``: ``Store.use_writer``,
``readiness serve`` with ingest workers). Both commit what has gathered with the store's own
batch (``Store._store_batch``) and share what a failed batch means (``settle``).

In the server process, the commit thread gives up the interpreter at each statement and must
win it back from the request threads: measured with ``py-spy --native`` during ingest on 2
cores, a third of that thread's time went to waiting for it, and that thread is what every
upload waits on. The writer process does nothing else.

``Writer.submit`` hands each item over one pipe (pickled, with a ticket) and waits for its
answer; a thread of the server reads the answers and wakes each waiting upload. The writer
takes what has arrived into one batch, commits it, answers, and takes what arrived meanwhile (it
waited in the pipe; a sender finding the pipe full waits, as it would wait for its answer). A
writer that dies fails the uploads in hand with ``Unavailable`` (503: the agent keeps the result
and sends it again, and a run stored already is answered "already"); the next upload starts
another writer. The writer stops at the server's last message (``close``), or when the server
dies. It opens the database with the ``opener`` it is given (this module imports no store).
"""

from __future__ import annotations

import itertools
import pickle
import queue
import threading
from typing import Any, Callable

from readiness.collector.engine import StoreError, Tally, Unavailable

class Batcher:
    """Group commit: callers hand in work and wait; one thread commits whatever has gathered in
    one transaction. With 32 agents uploading at once that is one fsync for dozens of results.
    A batch that fails as a whole (one bad row) is retried one item at a time, so one item's
    error never becomes another's; a database that is away fails every waiting caller alike."""

    MAX = 64
    WAIT_S = 60.0

    def __init__(self, commit: Callable[[list[Any]], list[Any]]) -> None:
        self.commit = commit
        self.queue: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, item: Any) -> Any:
        # item, done, outcome, error; done: a lock held until the batch is committed (released
        # by the commit thread), cheaper than an Event (a Condition and a waiter lock per wait)
        done = threading.Lock()
        done.acquire()
        slot: list[Any] = [item, done, None, None]
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True, name="group-commit")
                self.thread.start()
        self.queue.put(slot)
        if not done.acquire(timeout=self.WAIT_S):
            raise Unavailable("the database did not commit in time")
        if slot[3] is not None:
            raise slot[3]
        return slot[2]

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[list[Any]]) -> None:
        for slot, (outcome, error) in zip(batch, settle(self.commit, [slot[0] for slot in batch])):
            slot[2], slot[3] = outcome, error
            slot[1].release()

    def depth(self) -> int:
        """Items handed in and not yet taken into a batch."""
        return self.queue.qsize()

    def close(self) -> None:
        """Nothing to stop: the commit thread waits for work, a daemon."""


def settle(commit: Callable[[list[Any]], list[Any]], items: list[Any]) -> list[tuple[Any, BaseException | None]]:
    """(outcome, error) for each item, committed together by ``commit``. A batch that fails as
    a whole (one bad row) is tried again one item at a time, so one item's error never becomes
    another's; a database that is away (``Unavailable``) fails them all alike."""
    try:
        outcomes = commit(items)
    except Unavailable as exc:
        return [(None, exc)] * len(items)
    except Exception as exc:  # noqa: BLE001 - handed to the caller, never lost in the committing thread
        if len(items) == 1:
            return [(None, exc)]
        return [one for item in items for one in settle(commit, [item])]
    return [(outcome, None) for outcome in outcomes]


STOPPED = ("the collector's writer process stopped; whether the result was stored is not known: "
           "send it again (a result stored already is answered as such)")
_END = b""  # the server's last message: commit what is in hand, answer, and stop


class WriteError(RuntimeError):
    """A batch item the writer could not store for another reason than a database away (its text)."""


class Writer:
    """``Batcher``'s work (``submit``) done by a writer process. ``opener``: makes the store there
    (picklable: a ``functools.partial`` of ``Store``); ``errors``: the server's tally of database
    errors, which the writer's are added to (``/metrics``)."""

    WAIT_S = Batcher.WAIT_S

    def __init__(self, opener: Callable[[], Any], errors: Tally) -> None:
        self.opener = opener
        self.errors = errors
        self.lock = threading.Lock()  # one message at a time on the pipe; starting a writer
        self.conn: Any = None
        self.proc: Any = None
        self.waiting: dict[int, list[Any]] = {}  # ticket -> [done, outcome, error], of the writer now running
        self.tickets = itertools.count()
        self.closed = False

    def _start(self) -> Any:
        """The pipe to the running writer; a writer started first when none runs (``lock`` held)."""
        if self.conn is None:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_write_loop, args=(theirs, self.opener), daemon=True,
                               name="readiness-ingest-writer")
            proc.start()
            theirs.close()
            self.conn, self.proc, self.waiting = ours, proc, {}
            threading.Thread(target=self._answers, args=(ours, proc, self.waiting), daemon=True,
                             name="ingest-writer-answers").start()
        return self.conn

    def warm(self) -> None:
        """Start the writer now, not on the first upload."""
        with self.lock:
            if not self.closed:
                self._start()

    def submit(self, item: Any) -> Any:
        """Store one item (``Store.store``'s tuple); returns ``_store_batch``'s outcome for it."""
        done = threading.Lock()
        done.acquire()  # released by the answers' thread
        slot: list[Any] = [done, None, None]
        ticket = next(self.tickets)
        message = pickle.dumps((ticket, item), pickle.HIGHEST_PROTOCOL)
        with self.lock:
            if self.closed:
                raise Unavailable("the collector is stopping; send the result again")
            conn = self._start()
            waiting = self.waiting
            waiting[ticket] = slot
            try:
                conn.send_bytes(message)
            except OSError:
                waiting.pop(ticket, None)
                raise Unavailable(STOPPED) from None
        if not done.acquire(timeout=self.WAIT_S):
            waiting.pop(ticket, None)
            raise Unavailable("the database did not commit in time")
        if slot[2] is not None:
            raise slot[2]
        return slot[1]

    def _answers(self, conn: Any, proc: Any, waiting: dict[int, list[Any]]) -> None:
        """Wake each upload with its answer, until the writer's pipe closes; then fail those in hand."""
        seen = dict.fromkeys(self.errors.counts, 0)
        while True:
            try:
                answers, errors = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            for kind, n in errors.items():  # the writer's database errors, counted here too
                if n > seen.get(kind, 0):
                    self.errors.add(kind, n - seen.get(kind, 0))
                    seen[kind] = n
            for ticket, outcome, error in answers:
                slot = waiting.pop(ticket, None)
                if slot is not None:
                    slot[1], slot[2] = outcome, _raised(error)
                    slot[0].release()
        with self.lock:
            if self.conn is conn:
                self.conn = self.proc = None
            conn.close()
            for slot in [waiting.pop(t) for t in list(waiting)]:
                slot[2] = Unavailable(STOPPED)
                slot[0].release()
        proc.join(5)

    def depth(self) -> int:
        """Items handed to the writer and not yet answered."""
        return len(self.waiting)

    def close(self) -> None:
        """Stop the writer: it commits what it holds, then ends (killed after 10 s)."""
        with self.lock:
            self.closed = True
            conn, proc = self.conn, self.proc
            if conn is not None:
                try:
                    conn.send_bytes(_END)  # not a close: the answers' thread is reading this pipe
                except OSError:
                    pass
        if proc is not None:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def _portable(error: BaseException | None) -> tuple[str, str] | None:
    """An error as plain values for the pipe (a driver's exception need not pickle)."""
    if error is None:
        return None
    if isinstance(error, Unavailable):
        return ("unavailable", str(error))
    return ("error", f"{type(error).__name__}: {str(error).strip()[:500]}")


def _raised(error: tuple[str, str] | None) -> BaseException | None:
    if error is None:
        return None
    return Unavailable(error[1]) if error[0] == "unavailable" else WriteError(error[1])


def _write_loop(conn: Any, opener: Callable[[], Any]) -> None:
    """The writer process: batches of what has arrived, committed as ``Batcher`` commits them
    (``settle``), the answers sent back in one message per batch."""
    store: Any = None

    def receive() -> bytes:
        try:
            return conn.recv_bytes()
        except (EOFError, OSError):
            return _END

    ending = False
    while not ending:
        first = receive()
        if first == _END:
            break
        # what else has arrived meanwhile (items sent during the last commit wait in the pipe)
        batch = [first]
        while len(batch) < Batcher.MAX and conn.poll(0):
            raw = receive()
            if raw == _END:
                ending = True
                break
            batch.append(raw)
        entries = [pickle.loads(raw) for raw in batch]
        try:
            if store is None:  # opened here, not at the start: a database away fails these uploads, not the writer
                store = opener()
            settled = settle(store._store_batch, [item for _ticket, item in entries])
        except StoreError as exc:
            settled = [(None, Unavailable(str(exc)))] * len(entries)
        except Exception as exc:  # noqa: BLE001 - the database could not be opened: these uploads fail, the writer stays
            settled = [(None, Unavailable(f"the database could not be opened: {str(exc).strip()[:200]}"))] * len(entries)
        answers = [(ticket, outcome, _portable(error)) for (ticket, _item), (outcome, error) in zip(entries, settled)]
        errors = store.errors.snapshot() if store is not None else {}
        try:
            conn.send_bytes(pickle.dumps((answers, errors), pickle.HIGHEST_PROTOCOL))
        except OSError:  # the server is gone: what was committed stays, its uploads are sent again
            break
    if store is not None:
        store.close()
