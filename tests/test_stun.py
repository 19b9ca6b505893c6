"""STUN Binding wire format (RFC 5389 / RFC 5769 vectors), the paced probe stream and the responder."""

from __future__ import annotations

import socket
import statistics
import time

import pytest

from readiness.measure import netstats
from readiness.measure import stun
from readiness.server.stun import Responder

TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")  # RFC 5769 §2.2


def test_xor_mapped_address_matches_rfc5769_vector():
    assert stun.xor_address("192.0.2.1", 32853, TXID) == bytes.fromhex("0001a147e112a643")
    assert stun.parse_xor_address(bytes.fromhex("0001a147e112a643"), TXID) == ("192.0.2.1", 32853)


def test_ipv6_xor_mapped_address_round_trips():
    value = stun.xor_address("2001:db8:1234:5678:11:2233:4455:6677", 32853, TXID)
    assert stun.parse_xor_address(value, TXID) == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)


def test_binding_request_is_a_bare_20_byte_header():
    data = stun.encode_binding_request(TXID)
    assert data == bytes.fromhex("0001 0000 2112a442") + TXID
    msg = stun.decode(data)
    assert (msg.type, msg.txid, msg.attrs) == (stun.BINDING_REQUEST, TXID, [])


def test_response_round_trips_with_padding():
    req = stun.decode(stun.encode_binding_request(TXID))
    msg = stun.decode(stun.binding_response(req, ("10.1.2.3", 4567)))
    assert msg.type == stun.BINDING_SUCCESS and stun.mapped_address(msg) == ("10.1.2.3", 4567)
    odd = stun.encode(stun.Message(stun.BINDING_SUCCESS, TXID, [(stun.ATTR_SOFTWARE, b"abc")]))
    assert len(odd) == 20 + 4 + 4 and stun.decode(odd).attr(stun.ATTR_SOFTWARE) == b"abc"


@pytest.mark.parametrize("data", [b"", b"\x00" * 19, b"\x01\x01\x00\x00" + b"\x00" * 16,
                                  stun.encode_binding_request(TXID)[:2] + b"\x00\x08" + stun.encode_binding_request(TXID)[4:]])
def test_decode_rejects_what_is_not_stun(data):
    with pytest.raises(stun.StunError):
        stun.decode(data)


def test_binding_gets_the_mapped_address_from_a_responder():
    with Responder() as r:
        rtt, mapped = stun.binding(r.address, timeout_s=1.0)
    assert rtt is not None and rtt < 0.5
    assert mapped[0] == "127.0.0.1" and mapped[1] > 0


def test_binding_to_a_closed_port_reports_no_answer():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert stun.binding(("127.0.0.1", port), timeout_s=0.6) == (None, None)


def test_late_responder_sets_median_jitter_and_exact_loss():
    delay, jitter, drop = 0.040, 0.009, 0.05
    with Responder(delay_s=delay, jitter_s=jitter, drop=drop, seed=11) as r:
        samples = stun.probe_stream(r.address, count=150, interval_s=0.020)
        dropped = sum(c[3] for c in r._clients.values())
    st = netstats.summarize(samples)
    assert st["sent"] == 150
    # every request the responder chose to drop is a lost probe, and nothing else is
    assert st["sent"] - st["received"] == dropped > 0
    assert st["rtt_median_ms"] == pytest.approx(delay * 1000, abs=3.0)
    assert st["rtt_min_ms"] >= (delay - jitter) * 1000 - 0.5
    # uniform ±9 ms on the return leg: mean |ΔRTT| is 2·9/3 = 6 ms
    assert st["jitter_ms"] == pytest.approx(6.0, abs=2.5)


def test_probe_stream_is_paced_at_20ms():
    with Responder() as r:
        samples = stun.probe_stream(r.address, count=50, interval_s=0.020)
    gaps = [b.sent_at - a.sent_at for a, b in zip(samples, samples[1:])]
    assert statistics.median(gaps) == pytest.approx(0.020, abs=0.003)
    assert all(s.rtt_s is not None for s in samples)


def test_responder_rate_limits_each_client():
    with Responder(max_rate=20) as r:
        samples = stun.probe_stream(r.address, count=100, interval_s=0.001, linger_s=0.3)
    answered = sum(s.rtt_s is not None for s in samples)
    assert 10 <= answered <= 50  # a bucket of 20 plus ~20/s refill over ~0.1 s


def test_responder_logs_one_line_per_idle_client():
    lines = []
    with Responder(idle_s=0.2, on_idle=lambda ip, ok, no: lines.append((ip, ok, no))) as r:
        stun.probe_stream(r.address, count=5, interval_s=0.01)
        time.sleep(0.9)
    assert lines == [("127.0.0.1", 5, 0)]
