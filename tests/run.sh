#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need, then runs them.
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the real-component tests use: PulseAudio (virtual speaker and microphone,
# reached by PortAudio through ALSA's pulse plugin), iperf3 (throughput reference), iproute2 and
# iptables (network namespaces, tbf rate limits, random loss), Chromium (report rendering, the
# self-test page with fake media), Firefox ESR (the self-test page over Marionette),
# pulseaudio-utils (pactl/pacat/parec drive the test server), openssl (a TLS test certificate),
# systemd (systemd-analyze verifies the generated timer units), tinyproxy (a real forward proxy),
# dpkg and rpm (real package databases built in a temporary root for the software check),
# postgresql (the collector's database, a throw-away cluster per test session: tests/postgres.py),
# nginx (a real reverse proxy in front of the collector: tests/test_reverse_proxy.py),
# prometheus (promtool checks and unit-tests contrib/prometheus/readiness-rules.yml: tests/test_prometheus_rules.py).
DEB_PACKAGES="pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins iperf3 iproute2 iptables chromium firefox-esr procps openssl systemd tinyproxy dpkg rpm postgresql nginx prometheus"
missing=""
for p in $DEB_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "tests/run.sh: installing Debian packages:$missing" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
  else
    echo "tests/run.sh: missing Debian packages (tests needing them will skip):$missing" >&2
  fi
fi

# the server extra too: the self-test's WebRTC peer (aiortc) and the collector run inside `readiness serve`
python3 -m pip install -q --disable-pip-version-check -e ".[test,server]"
# The tests run the `readiness` console script too: make sure the one just installed is found.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH
exec python3 -m pytest -q -rs --durations=25 "$@"
