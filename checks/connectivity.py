"""connectivity: can this computer reach the meeting services, and can media flow over UDP?

For each service in the profile: DNS lookup time, TCP connect time and TLS handshake time to
its web/signalling endpoints, and a STUN Binding request (RFC 5389) to its media relays'
UDP ports, all at once, each with its own timeout. A service whose UDP ports do not answer
still works, but its calls fall back to TCP/TLS with lower quality; the details say so in
plain words. Also notes an HTTP proxy (from the environment or the OS settings) and a VPN
interface, both of which commonly hurt call quality.
"""

from __future__ import annotations

import re
import socket
import ssl
import statistics
import threading
import time

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Setting
from readiness.measure import netcommon as net, stun
from readiness.measure.netinfo import vpn_interfaces
from readiness.measure import proxies as trust_stores  # the module: its trust stores are looked up at each handshake
from readiness.measure.proxies import ProxyResolver, open_tunnel


DEFAULT_SERVICES = [
    {"name": "Microsoft Teams", "tcp": ["teams.microsoft.com:443", "worldaz.tr.teams.microsoft.com:443"],
     "stun": ["worldaz.tr.teams.microsoft.com:3478"]},
    {"name": "Zoom", "tcp": ["zoom.us:443"], "stun": []},
    {"name": "Google Meet", "tcp": ["meet.google.com:443"], "stun": ["stun.l.google.com:19302"]},
    {"name": "Webex", "tcp": ["webex.com:443"], "stun": []},
]

class ConnectivityCheck(Check):
    name = "connectivity"
    title = "Connectivity to meeting services"
    description = "DNS, TCP and TLS to each meeting service, and UDP media ports by STUN."
    resource = "network"
    section = "network"
    reports_services = True  # details["services"]: each service's reach and UDP media
    fix = "reach"  # let the services through the firewall; UDP media has its own fix
    order = 0
    budget_s = 10.0
    metrics = (
        Metric("dns_ms", "ms", "Median DNS lookup time"),
        Metric("tcp_connect_ms", "ms", "Median TCP connect time to the services"),
        Metric("tls_connect_ms", "ms", "Median TCP + TLS handshake time to the services"),
        Metric("udp_media_reachable", "", "A service's media relay answers over UDP (STUN)", kind="bool",
               fix="udp_ports"),
        Metric("services_udp_ok_count", "", "Services whose media relays answer over UDP", fix="udp_ports"),
        Metric("udp_server_reachable", "", "Your own readiness serve (--server) answers over UDP (STUN); "
                                           "says nothing about the services' relays", kind="bool", fix="udp_ports"),
        Metric("proxy_detected", "", "Web traffic to a meeting service goes through a proxy", kind="bool"),
        Metric("tls_intercepted", "", "TLS to a meeting service is intercepted: its certificate chain ends at a "
                                      "root only this computer trusts, not a public one", kind="bool",
               security_fact=True),
        Metric("vpn_detected", "", "A VPN interface is up", kind="bool"),
    )
    settings = {
        "services": Setting(DEFAULT_SERVICES, "Services: {name, tcp = [host:port], stun = [host:port], "
                                              "tls = [host:port] (default: the tcp ones on 443)}", list,
                            items=lambda svc: _service_problem(svc)),
        "timeout_s": Setting(2.0, "Timeout of each DNS, TCP, TLS and STUN attempt, seconds", float),
    }

    def run(self, ctx: CheckContext) -> Measurement:
        timeout = max(0.2, float(ctx.settings["timeout_s"]))
        server = net.server_option(ctx.options)
        services = _validated(ctx.settings["services"])
        own_name = None
        if server is not None:
            # Two facts, kept apart: your own server answering over UDP proves nothing about
            # the meeting services' relays, so both are tested and reported separately.
            hp = f"{server.host}:{server.port}"
            own_name = f"readiness server {server.url}"
            services.append({"name": own_name, "tcp": [hp], "tls": [hp] if server.scheme == "https" else [],
                             "stun": [f"{server.host}:{server.stun_port}"]})
        if not services:
            raise CheckError("no services configured for the connectivity check")

        def endpoints(svc, key, default_port):
            return [net.split_hostport(e, default_port) for e in svc.get(key, [])]

        for svc in services:
            if "tls" not in svc:
                svc["tls"] = [e for e in svc.get("tcp", []) if net.split_hostport(e, 443)[1] == 443]

        resolver = ProxyResolver(proxy=ctx.options.get("proxy"), pac_url=ctx.options.get("pac_url"), timeout_s=timeout)
        routes = {hp: resolver.route(f"https://{_host_for_url(hp[0])}:{hp[1]}/")
                  for svc in services for hp in endpoints(svc, "tls", 443)}
        proxied = {hp for hp, r in routes.items() if r.proxy}
        all_hp = [hp for svc in services for key, port in (("tcp", 443), ("tls", 443), ("stun", 3478))
                  for hp in endpoints(svc, key, port)]
        ctx.say(f"resolving {len({h for h, _ in all_hp})} names", step="connectivity_resolving", n=len({h for h, _ in all_hp}))
        dns = net.resolve_all(all_hp, timeout_s=timeout)
        if all(isinstance(r, Exception) for r in dns.values()) and not proxied:
            raise net.offline_error(sorted({h for h, _ in all_hp}))

        jobs: list = []
        out: dict = {}
        lock = threading.Lock()

        def record(key, value):
            with lock:
                out[key] = value

        for svc in services:
            for kind, port in (("tcp", 443), ("tls", 443), ("stun", 3478)):
                for hp in endpoints(svc, kind, port):
                    if kind == "tls" and hp in proxied:  # as a browser would: the proxy resolves the name
                        jobs.append(threading.Thread(target=lambda k=(kind, hp), r=routes[hp]:
                                                     record(k, _tls_via(r, k[1], timeout)), daemon=True))
                        continue
                    r = dns[hp]
                    if isinstance(r, Exception):
                        record((kind, hp), {"error": f"DNS lookup failed ({_plain(r)})"})
                        continue
                    fn = {"tcp": _tcp, "tls": _tls, "stun": _stun}[kind]
                    jobs.append(threading.Thread(target=lambda f=fn, k=(kind, hp), ai=r[0][0], h=hp[0]:
                                                 record(k, f(ai, h, timeout, stun)), daemon=True))
        ctx.say(f"testing {len(jobs)} endpoints", step="connectivity_testing", n=len(jobs))
        for t in jobs:
            t.start()
        deadline = time.monotonic() + 2 * timeout + 1.0
        for t in jobs:
            t.join(max(0.0, deadline - time.monotonic()))

        per_service = []
        dns_ms, tcp_ms, tls_ms = [], [], []
        findings: list[dict] = []
        intercepted = False
        udp_ok = 0
        udp_tested = 0
        own_udp = None
        unresolved: list[str] = []
        for svc in services:
            entry: dict = {"name": svc.get("name", "?"), "tcp": {}, "tls": {}, "stun": {}}
            for kind, port in (("tcp", 443), ("tls", 443), ("stun", 3478)):
                for hp in endpoints(svc, kind, port):
                    res = out.get((kind, hp), {"error": "timed out"})
                    entry[kind][f"{hp[0]}:{hp[1]}"] = res
                    if kind == "tcp" and "ms" in res:
                        tcp_ms.append(res["ms"])
                    if kind == "tls" and "ms" in res:
                        tls_ms.append(res["ms"])
            for hp in {hp for kind, port in (("tcp", 443), ("tls", 443), ("stun", 3478))
                       for hp in endpoints(svc, kind, port)}:
                r = dns.get(hp, OSError())
                if not isinstance(r, Exception):
                    dns_ms.append(r[1])
            stun_results = list(entry["stun"].values())
            names = {hp for kind, port in (("tcp", 443), ("tls", 443), ("stun", 3478)) for hp in endpoints(svc, kind, port)}
            if names and all(isinstance(dns.get(hp), Exception) and hp not in proxied for hp in names):
                # its names do not resolve: nothing of it was measured, so nothing of it is judged
                entry["reachable"] = None
                unresolved.append(entry["name"])
                per_service.append(entry)
                continue
            if stun_results and entry["name"] == own_name:
                own_udp = entry["udp_media"] = any("ms" in r for r in stun_results)
            elif stun_results:
                udp_tested += 1
                ok = any("ms" in r for r in stun_results)
                entry["udp_media"] = ok
                udp_ok += ok
                if not ok:
                    findings.append({"code": "udp_media_silent", "args": {"service": entry["name"]}})
            reachable = any("ms" in r for r in entry["tcp"].values()) or any("ms" in r for r in entry["tls"].values())
            entry["reachable"] = reachable
            if not reachable and (entry["tcp"] or entry["tls"]):
                findings.append({"code": "service_unreachable", "args": {"service": entry["name"]}})
            for k, r in entry["tls"].items():
                if r.get("certificate") == "intercepted":
                    intercepted = True
                    findings.append({"code": "tls_intercepted",
                                     "args": {"service": entry["name"], "endpoint": k, "issuer": r.get("issuer", "")}})
            untrusted = [k for k, r in entry["tls"].items() if r.get("certificate") == "not trusted"]
            if untrusted:
                findings.append({"code": "tls_not_trusted", "args": {"service": entry["name"], "endpoints": ", ".join(untrusted)}})
            per_service.append(entry)

        if unresolved:
            findings.insert(0, {"code": "services_unresolved", "args": {"services": ", ".join(unresolved)}})
        proxies = resolver.facts()
        vpn = vpn_interfaces()
        if proxied:
            findings.append({"code": "proxy_configured", "args": {}})
        if vpn:
            findings.append({"code": "vpn_active", "args": {"interfaces": ", ".join(vpn)}})
        metrics: dict = {"proxy_detected": bool(proxied), "vpn_detected": bool(vpn)}
        if any("ms" in r for e in per_service for r in e["tls"].values()):
            metrics["tls_intercepted"] = intercepted
        elif not unresolved:  # nothing to judge interception by: say why, rather than leave it blank
            findings.append({"code": "tls_not_tested", "args": {}})
        if dns_ms:
            metrics["dns_ms"] = round(statistics.median(dns_ms), 2)
        if tcp_ms:
            metrics["tcp_connect_ms"] = round(statistics.median(tcp_ms), 2)
        if tls_ms:
            metrics["tls_connect_ms"] = round(statistics.median(tls_ms), 2)
        if udp_tested:
            metrics["udp_media_reachable"] = udp_ok > 0
            metrics["services_udp_ok_count"] = udp_ok
        elif not any(svc.get("stun") for svc in services if svc.get("name") != own_name):
            findings.append({"code": "udp_not_tested", "args": {}})  # no relay to ask: say so
        if own_udp is not None:
            metrics["udp_server_reachable"] = own_udp
        if not tcp_ms and not tls_ms and not udp_ok and not own_udp:
            via = [r for e in per_service for r in e["tls"].values() if r.get("via") and r.get("error")]
            if via:
                message = (f"no meeting service could be reached through the proxy {via[0]['via']} "
                           f"({via[0]['source']}): {via[0]['error']}")
                # the proxy's own answer (an HTTP status) is a fact in any language; the rest of the
                # message is for a technician and stays in the appendix
                answer = re.search(r"HTTP/\d(?:\.\d)? (\d{3}[^)]*)", via[0]["error"])
                if answer:
                    raise CheckError(message, code="services_refused_by_proxy", proxy=via[0]["via"],
                                     source=via[0]["source"], answer=answer.group(1).strip())
                raise CheckError(message, code="services_unreachable_via_proxy", proxy=via[0]["via"],
                                 source=via[0]["source"])
            raise CheckError("no meeting service could be reached: names resolve, but every connection "
                             "fails (a firewall blocks them, or the internet connection is down)",
                             code="services_unreachable")
        if udp_tested:
            findings.append({"code": "udp_relays_tested", "args": {
                "services": ", ".join(e["name"] for e in per_service if "udp_media" in e and e["name"] != own_name),
                "ok": udp_ok, "n": udp_tested}})
        if own_udp is not None:
            findings.append({"code": "udp_own_server_answers" if own_udp else "udp_own_server_silent",
                             "args": {"url": server.url}})
        details = {"services": per_service, "proxies": proxies, "vpn_interfaces": vpn,
                   "findings": findings, "timeout_s": timeout}
        return Measurement(metrics=metrics, details=details)


_SERVICE_KEYS = ("name", "tcp", "stun", "tls")


def _service_problem(svc) -> str | None:
    """What is wrong with one entry of the services setting (checked when the config loads)."""
    if not isinstance(svc, dict):
        return "must be a table {name, tcp = [host:port], stun = [host:port]}"
    unknown = sorted(set(svc) - set(_SERVICE_KEYS))
    if unknown:
        return f"unknown key(s) {', '.join(unknown)} (keys: {', '.join(_SERVICE_KEYS)})"
    if not isinstance(svc.get("name", ""), str):
        return "name must be text"
    for key in ("tcp", "stun", "tls"):
        items = svc.get(key, [])
        if not isinstance(items, list):
            return f"{key} must be a list of \"host:port\""
        for item in items:
            problem = net.hostport_problem(item)
            if problem:
                return f"{key}: {problem}"
    if not svc.get("tcp") and not svc.get("stun") and not svc.get("tls"):
        return "names no endpoint (tcp, stun or tls)"
    return None


def _validated(services) -> list[dict]:
    out = []
    for i, svc in enumerate(services):
        problem = _service_problem(svc)
        if problem:  # settings are validated at load; this guards direct callers
            raise CheckError(f"connectivity.services[{i}]: {problem}")
        out.append(dict(svc))
    return out


def _plain(e: Exception) -> str:
    if isinstance(e, socket.gaierror):
        return "name not found" if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)) else "DNS error"
    if isinstance(e, TimeoutError):
        return "timed out"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _tcp(ai, host, timeout, _stun) -> dict:
    try:
        return {"ms": net.ms(net.tcp_connect_s(ai[4], ai[0], timeout)), "address": ai[4][0]}
    except OSError as e:
        return {"error": f"TCP connect failed ({_plain(e)})", "address": ai[4][0]}


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tls(ai, host, timeout, _stun) -> dict:
    """TCP connect + TLS handshake, timed together (what an app waits for before it can talk)."""
    def connect() -> socket.socket:
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(ai[4])
        except BaseException:
            s.close()
            raise
        return s

    return {**_tls_handshakes(connect, host, timeout), "address": ai[4][0]}


def _tls_via(route, hp, timeout) -> dict:
    """The same through the proxy the OS names for https://host (HTTP CONNECT)."""
    return {**_tls_handshakes(lambda: open_tunnel(route.proxy, hp[0], hp[1], timeout), hp[0], timeout),
            **route.describe()}


def _tls_handshakes(connect, host, timeout) -> dict:
    """Handshake against the public roots; if that fails on the certificate, against the OS
    trust store; if that fails too, without validation (for the time). A chain only the OS
    trusts ends at a non-public root: TLS is intercepted (or the service uses a private CA)."""
    def attempt(context):
        start = time.monotonic()
        s = connect()
        try:
            with context.wrap_socket(s, server_hostname=host) as t:
                t.settimeout(timeout)
                version, cert = t.version(), t.getpeercert()
            return time.monotonic() - start, version, cert
        finally:
            s.close()

    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    first_error = None
    for context, trust in ((trust_stores.public_tls_context(), "trusted"), (trust_stores.tls_context(), "intercepted"),
                           (unverified, "not trusted")):
        try:
            secs, version, cert = attempt(context)
        except ssl.SSLCertVerificationError as e:
            first_error = first_error or e
            continue
        except (OSError, ssl.SSLError) as e:
            return {"error": f"TLS handshake failed ({_plain(e)})"}
        res = {"ms": net.ms(secs), "version": version, "certificate": trust}
        if trust == "intercepted":
            res["issuer"] = _issuer(cert)
        if trust == "not trusted" and first_error is not None:
            res["certificate_error"] = first_error.verify_message or str(first_error)
        return res
    return {"error": "TLS handshake failed"}  # pragma: no cover - the unverified attempt returns


def _issuer(cert) -> str:
    """The issuing CA's name from a validated peer certificate (who re-signed the traffic)."""
    names = dict(pair for rdn in (cert or {}).get("issuer", ()) for pair in rdn)
    return str(names.get("organizationName") or names.get("commonName") or "")


def _stun(ai, host, timeout, stun) -> dict:
    try:
        rtt, mapped = stun.binding(ai[4], ai[0], timeout_s=timeout, tries=3)
    except OSError as e:
        return {"error": f"UDP failed ({_plain(e)})", "address": ai[4][0]}
    if rtt is None:
        return {"error": "no answer over UDP", "address": ai[4][0]}
    res = {"ms": net.ms(rtt), "address": ai[4][0]}
    if mapped:
        res["mapped_address"] = f"{mapped[0]}:{mapped[1]}"
    return res
