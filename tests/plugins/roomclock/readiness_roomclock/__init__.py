"""roomclock: a third party's check, as an organisation would write one for its own rooms.

It lives outside readiness (tests/plugins/roomclock is its distribution, found on the path like any
installed one) and changes nothing in readiness: it says which step-5 section it belongs to,
which of its metrics is a key figure and which a security fact, and brings its own words in
English and Swedish. The tests show it in the fleet report and on the self-test page.
"""

from __future__ import annotations

import shutil
import subprocess

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric


class RoomClockCheck(Check):
    name = "roomclock"
    title = "Room clock"
    description = "Whether the computer's clock is kept in step with a time server (sign-in and TLS need it)."
    section = "security"  # a clock off by minutes breaks sign-in tickets and certificates
    fix = "set_clock"  # the fix the fleet's action list names for a failure of its metrics
    metrics = (
        Metric("offset_ms", "ms", "Difference between this clock and the time server's", key_figure=30),
        Metric("clock_synced", "", "The clock is kept in step with a time server", kind="bool", security_fact=True),
    )
    budget_s = 5.0
    catalog = {
        "en": {"check": {"roomclock": "Room clock"},
               "step5": {"fact": {"clock_synced": "Clock kept in step with a time server"},
                         "action": {"set_clock": "Set the clock from the organisation's time server"}}},
        "sv": {"check": {"roomclock": "Rumsklocka"},
               "step5": {"fact": {"clock_synced": "Klockan hålls i takt med en tidsserver"},
                         "action": {"set_clock": "Ställ klockan efter organisationens tidsserver"}}},
    }

    def run(self, ctx: CheckContext) -> Measurement:
        tool = shutil.which("timedatectl")
        if tool is None:
            raise CheckError("timedatectl is not installed; the clock's state cannot be read")
        out = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True,
                             timeout=ctx.budget_s)
        if out.returncode != 0:
            raise CheckError(f"timedatectl could not tell the clock's state: {out.stderr.strip()[:200]}")
        return Measurement(metrics={"clock_synced": out.stdout.strip() == "yes"})
