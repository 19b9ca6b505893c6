"""The server's WebRTC peer for the self-test: a data channel that echoes, as a call's media path.

The page opens an RTCPeerConnection to this server with one data channel configured the way
real-time media travels (``ordered: false, maxRetransmits: 0``: UDP-like, a lost message stays
lost) and sends a small message every 20 ms; this peer sends each one straight back. The page
times the round trips; loss, jitter and reordering are then computed by ``readiness.measure.netstats``
as for the agent's STUN probes.

Signalling is one HTTP exchange without trickle ICE: the page posts its offer once its
candidates are gathered, this peer answers with its own. No STUN or TURN server is configured
on either side: on a LAN the host candidates meet, and nothing is contacted elsewhere.

aiortc (the ``server`` extra) runs in one asyncio loop on a daemon thread. Bounded: at most
``MAX_PEERS`` at once and ``MAX_PEERS_PER_NETWORK`` per client network (``server.fairness.client_key``:
an IPv6 /64, an IPv4 address); a peer whose data channel is not open ``PEER_CONNECT_S`` after the
answer, or has closed, is closed at once, and every peer after ``PEER_LIFETIME_S``; when all are
taken, a newcomer's network takes the oldest not yet connected peer of a network holding more.
An offer larger than ``MAX_OFFER`` bytes is refused before parsing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from readiness.server.fairness import client_key

MAX_PEERS = 8
MAX_PEERS_PER_NETWORK = MAX_PEERS // 2  # an office behind one address (or one /64) tests at once
PEER_CONNECT_S = 5.0  # ICE, DTLS and SCTP on a LAN take well under a second
PEER_LIFETIME_S = 60.0
MAX_OFFER = 16 * 1024
MAX_MESSAGE = 256  # bytes: a probe carries a sequence number and a time stamp


class PeerError(Exception):
    """An offer this peer cannot answer; the message is safe to show."""


def available() -> bool:
    try:
        import aiortc  # noqa: F401
    except ImportError:
        return False
    return True


class _Slot:
    """One peer's place, taken before its offer is answered."""

    def __init__(self, key: str) -> None:
        self.key, self.since = key, time.monotonic()
        self.pc: Any = None
        self.open = False  # its data channel is open
        self.gone = False  # closed, or given to another network


class EchoPeers:
    """Answers offers with an echoing data-channel peer; one asyncio loop for all of them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="webrtc-peers").start()
                self._loop = loop
            return self._loop

    def _admit(self, key: str) -> _Slot:
        """A place for a peer of network ``key``; raises PeerError when there is none."""
        with self._lock:
            counts: dict[str, int] = {}
            for s in self._slots:
                counts[s.key] = counts.get(s.key, 0) + 1
            mine = counts.get(key, 0)
            if mine >= MAX_PEERS_PER_NETWORK:
                raise PeerError("too many self-tests from your network at once; try again in a minute")
            victim = None
            if len(self._slots) >= MAX_PEERS:
                waiting = [s for s in self._slots if not s.open and counts[s.key] > mine]
                if not waiting:
                    raise PeerError("too many self-tests at once; try again in a minute")
                victim = max(waiting, key=lambda s: (counts[s.key], -s.since))
                self._slots.remove(victim)
                victim.gone = True
            slot = _Slot(key)
            self._slots.append(slot)
        if victim is not None and victim.pc is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(victim), self._loop)
        return slot

    def answer(self, offer: dict[str, Any], client: str = "", timeout_s: float = 10.0) -> dict[str, str]:
        """The SDP answer to ``offer`` ({"type": "offer", "sdp": ...}) from ``client`` (its
        address); raises PeerError."""
        if not available():
            raise PeerError("WebRTC is not available on this server (install readiness[server])")
        sdp = offer.get("sdp") if isinstance(offer, dict) else None
        if offer.get("type") != "offer" or not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise PeerError("not a WebRTC offer")
        if len(sdp) > MAX_OFFER:
            raise PeerError("the offer is too large")
        slot = self._admit(client_key(client))
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._answer(sdp, slot), loop)
        try:
            return future.result(timeout_s)
        except PeerError:
            self._release(slot)
            raise
        except TimeoutError:
            future.cancel()
            self._release(slot)
            raise PeerError("the server's WebRTC peer did not answer in time") from None
        except Exception as exc:  # noqa: BLE001 - aiortc's parse errors come in many types
            self._release(slot)
            raise PeerError(f"the offer could not be answered ({type(exc).__name__})") from None

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.gone = True
            if slot in self._slots:
                self._slots.remove(slot)

    async def _answer(self, sdp: str, slot: _Slot) -> dict[str, str]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection()  # no ICE servers: host candidates only, nothing contacted
        slot.pc = pc
        if slot.gone:  # given to another network before it started
            await pc.close()
            raise PeerError("too many self-tests at once; try again in a minute")

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            slot.open = True

            @channel.on("message")
            def on_message(message: Any) -> None:
                if len(message) <= MAX_MESSAGE and channel.readyState == "open":
                    channel.send(message)

            @channel.on("close")
            def on_close() -> None:
                asyncio.ensure_future(self._close(slot))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(slot)

        loop = asyncio.get_running_loop()

        def unless_open() -> None:
            if not slot.open:
                asyncio.ensure_future(self._close(slot))

        loop.call_later(PEER_CONNECT_S, unless_open)
        loop.call_later(PEER_LIFETIME_S, lambda: asyncio.ensure_future(self._close(slot)))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close(slot)
            raise
        return {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}

    async def _close(self, slot: _Slot) -> None:
        self._release(slot)
        if slot.pc is not None:
            await slot.pc.close()

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with self._lock:
            slots = list(self._slots)

        async def close_all() -> None:
            for slot in slots:
                await self._close(slot)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(3)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        loop.call_soon_threadsafe(loop.stop)
