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
``MAX_PEERS`` at once, each closed after ``PEER_LIFETIME_S``, an offer larger than
``MAX_OFFER`` bytes is refused before parsing.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

MAX_PEERS = 8
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


class EchoPeers:
    """Answers offers with an echoing data-channel peer; one asyncio loop for all of them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._peers: set[Any] = set()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="webrtc-peers").start()
                self._loop = loop
            return self._loop

    def answer(self, offer: dict[str, Any], timeout_s: float = 10.0) -> dict[str, str]:
        """The SDP answer to ``offer`` ({"type": "offer", "sdp": ...}); raises PeerError."""
        if not available():
            raise PeerError("WebRTC is not available on this server (install readiness[server])")
        sdp = offer.get("sdp") if isinstance(offer, dict) else None
        if offer.get("type") != "offer" or not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise PeerError("not a WebRTC offer")
        if len(sdp) > MAX_OFFER:
            raise PeerError("the offer is too large")
        if len(self._peers) >= MAX_PEERS:
            raise PeerError("too many self-tests at once; try again in a minute")
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._answer(sdp), loop)
        try:
            return future.result(timeout_s)
        except PeerError:
            raise
        except TimeoutError:
            future.cancel()
            raise PeerError("the server's WebRTC peer did not answer in time") from None
        except Exception as exc:  # noqa: BLE001 - aiortc's parse errors come in many types
            raise PeerError(f"the offer could not be answered ({type(exc).__name__})") from None

    async def _answer(self, sdp: str) -> dict[str, str]:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection()  # no ICE servers: host candidates only, nothing contacted
        self._peers.add(pc)

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            @channel.on("message")
            def on_message(message: Any) -> None:
                if len(message) <= MAX_MESSAGE and channel.readyState == "open":
                    channel.send(message)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._close(pc)

        asyncio.get_running_loop().call_later(PEER_LIFETIME_S, lambda: asyncio.ensure_future(self._close(pc)))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close(pc)
            raise
        return {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}

    async def _close(self, pc: Any) -> None:
        self._peers.discard(pc)
        await pc.close()

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        peers = list(self._peers)

        async def close_all() -> None:
            for pc in peers:
                await self._close(pc)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(3)
        except Exception:  # noqa: BLE001 - stopping anyway
            pass
        loop.call_soon_threadsafe(loop.stop)
