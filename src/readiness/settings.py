"""The run settings: one declaration each. Everything else is made from this table:

- the ``readiness run`` options (``readiness.cli.common.setting_options``),
- the configuration files' and ``READINESS_*`` variables' keys and their parsers, by ``kind``
  (``readiness.run.config``), and the typed :class:`readiness.run.config.RunConfig`,
- the run's choices the checks see (``readiness.check.RunChoices``: the settings with ``to_checks``).

A foundation module: plain data, no imports from the rest of the package. Adding a setting is
adding one row here (and a parser, if it is of a new kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # how a value is read: text, label, bool, url, urls, server, proxy, lang, profile, duration, file, dir
    default: Any
    help: str  # what `readiness config show` and the docs say of it
    type: str  # its Python type, as the typed objects declare it
    option: str = ""  # the command line's --help text ("" : the setting has no option)
    short: str = ""  # a short option, e.g. "-p"
    metavar: str = ""
    negative: str = ""  # a true/false option's other spelling, e.g. "--sound" for --no-sound
    config: bool = True  # False: command line only (an unattended run never sets it)
    to_checks: bool = False  # part of the run's choices a check reads (ctx.options)


SETTINGS: tuple[Setting, ...] = (
    Setting("profile", "profile", None, "shipped requirement list", "str | None",
            "Shipped requirement list (see `readiness profiles`). Default: video-call.", "-p", "NAME"),
    Setting("requirements", "file", None, "your own requirement list (TOML file)", "Path | None",
            "Your own requirement list (TOML).", "-r", "FILE"),
    Setting("server", "server", None, "your organization's `readiness serve` for the network checks",
            "SiteServer | None", "Your organization's `readiness serve` for the network checks.", metavar="URL",
            to_checks=True),
    Setting("upload_url", "urls", None,
            "where results are uploaded (collector URL; several, comma-separated or a list, are tried in order)",
            "str | None", "Collector URL results are sent to (as configured); several (repeated or comma-separated) "
            "are tried in order.", metavar="URL"),
    Setting("proxy", "proxy", None, "proxy URL, or \"direct\"; default: the OS's proxy settings", "str | None",
            "Proxy for the web checks and uploads (default: the OS's settings, PAC included).", metavar="URL|direct",
            to_checks=True),
    Setting("pac_url", "url", None, "proxy auto-configuration (PAC) file; default: the OS's", "str | None",
            "Proxy auto-configuration file to use instead of the OS's.", metavar="URL", to_checks=True),
    Setting("token_file", "file", None, "file holding the upload token", "Path | None",
            "File holding the upload token.", metavar="FILE"),
    Setting("output_dir", "dir", None, "folder for the JSON and HTML results", "Path | None",
            "Where the JSON and HTML go (default: a per-user data folder).", "-o", "DIR", to_checks=True),
    Setting("site", "label", "", "site or office", "str", "Site or office, e.g. Stockholm."),
    Setting("room", "label", "", "meeting room", "str", "Meeting room, e.g. 4.12."),
    Setting("label", "label", "", "free label, e.g. an asset tag", "str", "A free label for this run, e.g. an asset tag."),
    Setting("lang", "lang", "en", "language of the report", "str", "Language of the report (default: en).",
            to_checks=True),  # what a check says to a person (--interactive) is said in it
    Setting("microphone", "text", None, "microphone to test (part of its name)", "str | None",
            "Microphone to test (part of its name).", metavar="NAME", to_checks=True),
    Setting("speaker", "text", None, "speaker to test (part of its name)", "str | None",
            "Speaker to test (part of its name).", metavar="NAME", to_checks=True),
    Setting("camera", "text", None, "camera to test: part of its name, its index or a stream URL", "str | None",
            "Camera to test: part of its name, its index, or a stream URL.", metavar="NAME|INDEX|URL", to_checks=True),
    Setting("no_sound", "bool", False, "play no test sound", "bool", "Play no test sound (a room in use).",
            negative="--sound", to_checks=True),
    Setting("interactive", "bool", False, "ask the person to speak and to confirm the tone", "bool",
            "Ask you to speak and to confirm you heard the tone.", "-i", config=False, to_checks=True),
    Setting("keep_audio", "bool", False, "save the microphone recording beside the result", "bool",
            "Save the microphone recording beside the result.", negative="--no-keep-audio", to_checks=True),
    Setting("snapshot", "bool", False, "put one small camera picture in the report", "bool",
            "Put one small camera picture in the report.", negative="--no-snapshot", to_checks=True),
    Setting("quiet", "bool", False, "no progress and no summary", "bool",
            "No progress and no summary; the exit code tells.", "-q"),
    Setting("jitter", "duration", 0.0, "wait a random time up to this long before measuring", "float",
            "First wait a random time up to this long (e.g. 15m), so many rooms do not start at once.",
            metavar="DURATION"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
