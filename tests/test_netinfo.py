"""netinfo: the kind of each network adapter from the OS's own facts, and Wi-Fi signal/band.

Linux is tested for real: interfaces of known kinds are made in a network namespace and read
back from its /sys/class/net. macOS and Windows parsers are fed sample command output kept in
tests/fixtures/netinfo/ (its README says where each sample came from: they are written by hand,
no Mac or Windows machine was at hand to record them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from readiness.measure import netinfo
from support import need, scratch_namespace

SAMPLES = Path(__file__).parent / "fixtures" / "netinfo"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def test_macos_hardware_ports():
    facts = netinfo.parse_hardware_ports(sample("macos-networksetup-listallhardwareports.txt"))
    kinds = {name: f["kind"] for name, f in facts.items()}
    assert kinds == {"en4": "wired", "bridge0": "virtual", "en0": "wireless", "en1": "other", "en7": "wired",
                     "en8": "other", "en6": "other", "lo0": "loopback"}
    assert facts["en0"]["hardware_port"] == "Wi-Fi"
    # the bug: a MacBook's Wi-Fi en0 was "wired" by its name
    assert netinfo.interface_kind("en0", facts) == "wireless"
    assert netinfo.interface_kind("utun3", facts) == "vpn"  # not listed by networksetup: by name


def test_macos_wifi_signal_and_band():
    facts = netinfo.parse_airport_profile(json.loads(sample("macos-system_profiler-airport.json")))
    assert facts == {"en0": {"signal_dbm": -61.0, "band_ghz": 5.0, "standard": "802.11ac"}}


def test_windows_net_adapters():
    facts = netinfo.parse_net_adapters(sample("windows-get-netadapter.json"))
    kinds = {name: f["kind"] for name, f in facts.items()}
    assert kinds == {
        "Ethernet": "wired",
        "Wi-Fi": "wireless",  # ifType 71
        "Local Area Connection* 2": "wireless",  # Wi-Fi Direct: 802.11, never "loopback" by its "Lo" name
        "vEthernet (Default Switch)": "virtual",  # Hyper-V: ifType 6 but virtual
        "Ethernet 2": "virtual",  # VirtualBox Host-Only: no hardware interface
        "Ethernet 3": "vpn",  # Cisco AnyConnect
        "Loopback Pseudo-Interface 1": "loopback",
        "Teredo Tunneling Pseudo-Interface": "vpn",  # ifType 131
        "Mobilt bredband": "other",
    }
    assert facts["Wi-Fi"]["if_type"] == 71
    # ConvertTo-Json gives a bare object for a single adapter
    one = json.dumps(json.loads(sample("windows-get-netadapter.json"))[1])
    assert netinfo.parse_net_adapters(one)["Wi-Fi"]["kind"] == "wireless"
    assert netinfo.parse_net_adapters("") == {} and netinfo.parse_net_adapters("not json") == {}
    # the shape the agent asks for: adapters plus the default route's interface
    both = json.dumps({"adapters": json.loads(sample("windows-get-netadapter.json")), "default_route": "Ethernet 3"})
    facts = netinfo.parse_net_adapters(both)
    assert facts["Ethernet 3"]["default_route"] is True and facts["Ethernet 3"]["kind"] == "vpn"
    assert not any(f.get("default_route") for n, f in facts.items() if n != "Ethernet 3")


def test_windows_names_alone_are_never_wired_or_loopback_by_prefix():
    assert netinfo.kind_by_name("Local Area Connection* 2") == "other"
    assert netinfo.kind_by_name("Ethernet") == "other"  # without the OS's facts we do not claim a cable


def test_windows_wifi_signal_and_band():
    facts = netinfo.parse_netsh_wlan(sample("windows-netsh-wlan-show-interfaces.txt"))
    assert facts == {"Wi-Fi": {"band_ghz": 5.0, "channel": 44, "standard": "802.11ax", "signal_pct": 78.0}}
    older = "    Name                   : WLAN\n    Channel                : 6\n    Signal                 : 40%\n"
    assert netinfo.parse_netsh_wlan(older) == {"WLAN": {"channel": 6, "band_ghz": 2.4, "signal_pct": 40.0}}


def test_linux_wifi_signal_and_band():
    assert netinfo.parse_proc_net_wireless(sample("linux-proc-net-wireless.txt")) == {
        "wlp2s0": {"link_quality": 52.0, "signal_dbm": -58.0}}
    link = netinfo.parse_iw_link(sample("linux-iw-dev-link.txt"))
    assert (link["frequency_mhz"], link["band_ghz"], link["signal_dbm"], link["ssid"]) == (5220.0, 5.0, -58.0, "Myndigheten")
    assert [netinfo.band_of(f) for f in (2412, 5180, 5955, 900)] == [2.4, 5.0, 6.0, None]


PROBE = ("import json, sys; from readiness.measure.netinfo import linux_link_facts; "
         "print(json.dumps({k: v['kind'] for k, v in linux_link_facts().items()}))")


def test_linux_kinds_for_real_in_a_network_namespace():
    with scratch_namespace("rdykind") as ns:
        for cmd in (["ip", "link", "add", "veth3", "type", "veth", "peer", "name", "veth3b"],
                    ["ip", "link", "add", "ifb3", "type", "ifb"],
                    ["ip", "link", "add", "br3", "type", "bridge"],
                    ["ip", "tuntap", "add", "dev", "tun3", "mode", "tun"],
                    ["ip", "tuntap", "add", "dev", "vmnic3", "mode", "tap"]):
            subprocess.run(["ip", "-n", ns, *cmd[1:]], check=True, capture_output=True, timeout=20)
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE], capture_output=True,
                             text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"lo": "loopback", "veth3": "virtual", "veth3b": "virtual", "ifb3": "virtual",
                                      "br3": "virtual", "tun3": "vpn", "vmnic3": "virtual"}


def test_linux_hardware_nic_is_wired_here():
    """On this machine (a VM) the adapters with a device behind them are the machine's NICs."""
    facts = netinfo.linux_link_facts()
    need(bool(facts), "no /sys/class/net")
    for name, fact in facts.items():
        if fact["hardware"] and fact["arphrd"] == 1 and not os.path.exists(f"/sys/class/net/{name}/wireless"):
            assert fact["kind"] == "wired", name
        if not fact["hardware"]:
            assert fact["kind"] != "wired", name
