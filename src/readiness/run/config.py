"""The run configuration: one typed, validated object built at start-up from every place a
deployment can set something.

Sits between the CLI (which hands over what was typed) and the session/runner/checks (which
read the typed object, never a loose dict). Sources, lowest first::

    built-in defaults
    system file     platformdirs' site config folder / config.toml   (e.g. /etc/xdg/readiness,
                    C:\\ProgramData\\readiness, /Library/Application Support/readiness)
    user file       platformdirs' user config folder / config.toml
    --config FILE   (or READINESS_CONFIG=FILE): a file named for this run
    environment     READINESS_<SETTING>, e.g. READINESS_SITE=Stockholm,
                    READINESS_CHECKS__LATENCY__DURATION_S=10
    command line    --site Stockholm, --set latency.duration_s=10

A file looks like::

    profile = "meeting-room"
    site = "Stockholm"
    output_dir = '\\\\fileserver\\readiness$'
    jitter = "15m"
    [checks.latency]
    targets = ["stun.example.org:3478"]

Every wrong value, in any source, is a :class:`ConfigError` naming the file and line or the
variable, raised before anything is measured; list-valued check settings are checked item by
item (through the checks' own ``Setting.items`` validators). Each value remembers where it
came from, so ``readiness config show`` can say it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from readiness.atomic import NotAFile, read_regular
from readiness.check import Check, RunChoices
from readiness.i18n import languages
from readiness.i18n.format import Refused, Worded
from readiness.judge.requirements import DEFAULT_PROFILE, shipped_profiles, toml_loads, tomllib, validate_settings
from readiness.measure.proxies import redact
from readiness.redact import redact_url
from readiness.settings import SETTINGS
from readiness.siteserver import SiteServer
from readiness.textsafe import has_surrogate

APP = "readiness"
FILE_NAME = "config.toml"
ENV_PREFIX = "READINESS_"
# READINESS_* variables that are not settings: do not warn about them.
# READINESS_UPLOAD_TOKEN: the upload token itself (agents that cannot keep a file); READINESS_SPOOL_DIR:
# where unsent results wait; READINESS_DB: the collector's database for `serve`/`serve token`
ENV_NOT_SETTINGS = {"READINESS_DEBUG", "READINESS_STRICT", "READINESS_CONFIG", "READINESS_UPLOAD_TOKEN",
                    "READINESS_SPOOL_DIR", "READINESS_DB"}


class ConfigError(Exception):
    """A configuration value that cannot be used: ``text(lang)`` is "where: message" in a
    language, ``str()`` in English. ``lead`` comes before the message (the setting it is about);
    ``lang`` is the language the configuration asks for, as far as it could be read (``load_config``
    sets it: the reader of a broken configuration is still told in their language)."""

    def __init__(self, where: str, message: str | Worded, lead: str = "") -> None:
        self.where, self.message, self.lead = where, message, lead
        self.lang: str | None = None
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        said = self.lead + (self.message.text(lang) if isinstance(self.message, Worded) else self.message)
        return said if said.startswith(self.where) else f"{self.where}: {said}"

    def __str__(self) -> str:
        return self.text("en")


# --- value kinds ----------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$", re.IGNORECASE)
_UNIT_S = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """``15m``, ``30s``, ``1h``, ``90`` (seconds) or a number -> seconds. ValueError if not."""
    if isinstance(value, bool):
        raise Refused("config.not_duration_type")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise Refused("config.not_duration", value=repr(value))
        seconds = float(m.group(1)) * _UNIT_S[m.group(2).lower() if m.group(2) else None]
    if seconds < 0 or seconds > 24 * 3600:
        raise Refused("config.duration_range", value=repr(value))
    return seconds


def _text(value: Any, from_env: bool) -> str:
    if not isinstance(value, str):
        raise Refused("config.not_text", value=repr(value))
    if "\n" in value or "\r" in value:
        raise Refused("config.must_one_line")
    if has_surrogate(value):  # bytes of a variable that are not UTF-8 (as argv: cli._Group)
        raise Refused("config.not_encoded")
    return value.strip()


MAX_LABEL = 200  # the result schema's maxLength of labels.* (site, room, label)


def _label(value: Any, from_env: bool) -> str:
    text = _text(value, from_env)
    if len(text) > MAX_LABEL:
        raise Refused("config.must_label_length", max=MAX_LABEL, length=len(text))
    return text


def _bool(value: Any, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_env and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Refused("config.not_bool", value=repr(value))


def _url(value: Any, from_env: bool) -> str:
    """An http(s) URL; a bare ``host[:port]`` means http, as ``--server`` always took it."""
    from urllib.parse import urlsplit

    text = _text(value, from_env)
    if not text:
        return ""
    try:
        parts = urlsplit(text if "://" in text else f"http://{text}")
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if parts is not None and parts.scheme not in ("http", "https"):
        raise Refused("config.must_http_url", value=repr(redact_url(text)))
    if parts is None or not parts.hostname:
        raise Refused("config.must_url", value=repr(redact_url(text)))
    return text


def _urls(value: Any, from_env: bool) -> str:
    """One collector URL, or several the agent fails over to in order: a TOML list, a repeated
    option, or text with commas. Kept as text with commas (the upload splits it)."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        for part in _text(item, from_env).split(","):
            if part.strip():
                out.append(_url(part.strip(), from_env))
    return ",".join(out)


def _server_url(value: Any, from_env: bool) -> SiteServer | str:
    """The one place ``--server`` is parsed: into the typed value every check then reads."""
    text = _text(value, from_env)
    return SiteServer.parse(text) if text else ""


def _lang(value: Any, from_env: bool) -> str:
    text = _text(value, from_env)
    if text not in languages():
        raise Refused("config.not_language", value=repr(text), languages=", ".join(languages()))
    return text


def _profile_name(value: Any, from_env: bool) -> str:
    text = _text(value, from_env)
    names = list(shipped_profiles())
    if text not in names:
        raise Refused("config.no_profile", value=repr(text), names=", ".join(names))
    return text


def _proxy(value: Any, from_env: bool) -> str:
    text = _text(value, from_env)
    return text if text.lower() in ("", "direct") else _url(text, from_env)


def _duration(value: Any, from_env: bool) -> float:
    return parse_duration(value)


def _file(value: Any, from_env: bool) -> str:
    return _text(value, from_env)


# How each kind of setting (``readiness.settings``) is read from a file, a variable or the command
# line; a path kind is then resolved against the file's folder ("file" must exist, "dir" is made later).
PARSERS: dict[str, Callable[[Any, bool], Any]] = {
    "text": _text, "label": _label, "bool": _bool, "url": _url, "urls": _urls, "server": _server_url, "proxy": _proxy,
    "lang": _lang, "profile": _profile_name, "duration": _duration, "file": _file, "dir": _file,
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    parse: Callable[[Any, bool], Any]
    default: Any
    help: str
    path: str = ""  # "file": must be an existing file; "dir": a folder (made later); "" not a path


# The settings a file or a READINESS_* variable may hold (the command-line-only ones are not here).
FIELDS: dict[str, FieldSpec] = {
    s.name: FieldSpec(s.name, PARSERS[s.kind], s.default, s.help, s.kind if s.kind in ("file", "dir") else "")
    for s in SETTINGS if s.config}


class _Config:
    """What :class:`RunConfig` can tell besides its values."""

    @property
    def labels(self) -> dict[str, str]:
        return {"label": self.label, "site": self.site, "room": self.room}  # type: ignore[attr-defined]

    def choices(self, output_dir: Path | None = None) -> RunChoices:
        """What the checks see of this configuration (``CheckContext.options``): every setting the
        table marks ``to_checks``; the results folder as text."""
        values = {s.name: getattr(self, s.name) for s in SETTINGS if s.to_checks}
        folder = output_dir or values["output_dir"]
        values["output_dir"] = str(folder) if folder else None
        if values.get("lang") == "en":  # English is the checks' own words: nothing to tell them
            values["lang"] = None
        return RunChoices(**values)

    def rows(self) -> list[tuple[str, Any, str]]:
        """(setting, value, source) for every setting, for ``readiness config show``."""
        out = []
        for name in FIELDS:
            value = getattr(self, name)
            if name in ("proxy", "upload_url", "pac_url") and isinstance(value, str):
                value = ",".join(redact(u) for u in value.split(","))  # a password in a URL is not shown
            if isinstance(value, SiteServer):
                value = value.given or value.url
            out.append((name, str(value) if isinstance(value, Path) else value, self.sources.get(name, "default")))  # type: ignore[attr-defined]
        for cname, table in sorted(self.checks.items()):  # type: ignore[attr-defined]
            for key, value in sorted(table.items()):
                dotted = f"checks.{cname}.{key}"
                out.append((dotted, value, self.sources.get(dotted, "default")))  # type: ignore[attr-defined]
        return out


# The effective configuration of one run, built only by :func:`load_config`: one field per
# setting of ``readiness.settings`` (typed as declared there), then the validated check settings,
# where each value came from, and which configuration files were looked for.
RunConfig = make_dataclass("RunConfig", [
    *((s.name, s.type, field(default=s.default)) for s in SETTINGS),
    ("checks", "dict[str, dict[str, Any]]", field(default_factory=dict)),  # validated check settings
    ("sources", "dict[str, str]", field(default_factory=dict)),  # setting -> where its value came from
    ("files", "tuple[tuple[str, bool], ...]", field(default=())),  # (config file, was it there)
], bases=(_Config,), frozen=True)
RunConfig.__module__ = __name__
RunConfig.__doc__ = "The effective configuration of one run. Built only by :func:`load_config`."


# --- where files are ------------------------------------------------------------------------


def system_file() -> Path:
    from platformdirs import site_config_path

    return site_config_path(APP, appauthor=False) / FILE_NAME


def user_file() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP, appauthor=False, roaming=True) / FILE_NAME


# --- loading --------------------------------------------------------------------------------


class _Layer:
    """Raw values of one source, each with the place it came from."""

    def __init__(self, origin: str, from_env: bool = False, base: Path | None = None) -> None:
        self.origin, self.from_env, self.base = origin, from_env, base
        self.values: dict[str, tuple[Any, str]] = {}
        self.checks: dict[str, dict[str, tuple[Any, str]]] = {}


def _line_of(lines: list[str], table: str | None, key: str) -> int | None:
    """Line (1-based) of ``key = `` in the top level (table None) or in ``[table]``."""
    start = 0
    if table is not None:
        header = re.compile(r"\s*\[\s*" + r"\s*\.\s*".join(re.escape(p) for p in table.split(".")) + r"\s*\]")
        starts = [i for i, line in enumerate(lines) if header.match(line)]
        if not starts:
            return None
        start = starts[0] + 1
    keyrx = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for i in range(start, len(lines)):
        if re.match(r"\s*\[", lines[i]):
            break
        if keyrx.match(lines[i]):
            return i + 1
    return start if table is not None else None


MAX_CONFIG_BYTES = 1024 * 1024  # a configuration is a few hundred bytes; a pipe or /dev/zero is refused


def _file_layer(path: Path, kind: str) -> _Layer:
    try:
        text = read_regular(path, MAX_CONFIG_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(str(path), Refused("config.file_not_utf8")) from None
    except NotAFile as exc:
        raise ConfigError(str(path), str(exc)) from None
    except OSError as exc:
        raise ConfigError(str(path), Refused("config.file_unreadable", detail=str(exc.strerror or exc))) from None
    try:
        data = toml_loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise ConfigError(where, Refused("config.not_toml", detail=str(exc))) from None
    lines = text.splitlines()
    layer = _Layer(kind, base=path.parent)

    def where(table: str | None, key: str) -> str:
        line = _line_of(lines, table, key)
        return f"{path}:{line}" if line else str(path)

    for key, value in data.items():
        if key == "checks":
            if not isinstance(value, dict):
                raise ConfigError(where(None, key), Refused("config.checks_tables"))
            for cname, table in value.items():
                if not isinstance(table, dict):
                    raise ConfigError(where(None, "checks"), Refused("config.check_table", check=cname))
                layer.checks[cname] = {k: (v, where(f"checks.{cname}", k)) for k, v in table.items()}
            continue
        if key not in FIELDS:
            raise ConfigError(where(None, key), Refused("config.unknown_setting", setting=key, settings=", ".join(FIELDS)))
        layer.values[key] = (value, where(None, key))
    return layer


def _env_layer(env: Mapping[str, str], warn: Callable[[Worded], None]) -> _Layer:
    layer = _Layer("environment", from_env=True, base=None)
    for var, raw in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_SETTINGS:
            continue
        rest = var[len(ENV_PREFIX):]
        if rest.startswith("CHECKS__"):
            parts = rest.split("__")
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise ConfigError(var, Refused("config.env_check_form"))
            try:
                value = toml_loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw  # plain text without quotes
            layer.checks.setdefault(parts[1].lower(), {})[parts[2].lower()] = (value, var)
            continue
        name = rest.lower()
        if name in FIELDS:
            layer.values[name] = (raw, var)
        else:
            warn(Worded("config.warn_unknown_variable", variable=var,
                        settings=", ".join(ENV_PREFIX + f.upper() for f in FIELDS)))
    return layer


def _resolve_path(spec: FieldSpec, text: str, base: Path | None) -> Path:
    p = Path(text).expanduser()
    if not p.is_absolute() and base is not None and not text.startswith(("\\\\", "//")):
        p = base / p
    if spec.path == "file" and not p.is_file():
        raise Refused("config.not_regular_file" if p.exists() else "config.no_such_file", value=repr(text))
    return p


def load_config(cli: Mapping[str, Any] | None = None, cli_checks: Mapping[str, Mapping[str, Any]] | None = None, *,
                checks: Mapping[str, type[Check]] | None = None, broken: Mapping[str, str] | None = None,
                config_file: str | None = None,
                env: Mapping[str, str] | None = None, warn: Callable[[Worded], None] | None = None,
                interactive: bool = False) -> RunConfig:
    """Build the effective configuration. ``cli`` holds only what was typed on the command line
    (option name -> value); ``cli_checks`` the parsed ``--set`` values; ``checks`` the installed
    check classes, against which every check setting is validated. Raises :class:`ConfigError`,
    with the language the configuration asks for (``ConfigError.lang``) as far as it can be read."""
    env = os.environ if env is None else env
    try:
        return _load(cli, cli_checks, checks, broken, config_file, env, warn, interactive)
    except ConfigError as exc:
        exc.lang = asked_language(cli or {}, env, config_file)
        raise


def asked_language(cli: Mapping[str, Any], env: Mapping[str, str], config_file: str | None = None) -> str | None:
    """The language the highest source that names a valid one asks for (the command line, the
    environment, the named file, the user's, the system's), read leniently: a configuration
    that is wrong elsewhere is still answered in its reader's language. None: none names one."""
    asked: list[Any] = [cli.get("lang"), env.get(ENV_PREFIX + "LANG")]
    for path in (config_file or env.get("READINESS_CONFIG"), user_file(), system_file()):
        if not path:
            continue
        try:
            asked.append(toml_loads(read_regular(Path(path).expanduser(), MAX_CONFIG_BYTES).decode("utf-8-sig"))
                         .get("lang"))
        except (OSError, NotAFile, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            continue
    return next((a.strip() for a in asked if isinstance(a, str) and a.strip() in languages()), None)


def _load(cli: Mapping[str, Any] | None, cli_checks: Mapping[str, Mapping[str, Any]] | None,
          checks: Mapping[str, type[Check]] | None, broken: Mapping[str, str] | None, config_file: str | None,
          env: Mapping[str, str], warn: Callable[[Worded], None] | None, interactive: bool) -> RunConfig:
    warn = warn or (lambda _m: None)
    layers: list[_Layer] = []
    files: list[tuple[str, bool]] = []
    for path, kind in ((system_file(), "system file"), (user_file(), "user file")):
        exists = path.is_file()
        files.append((str(path), exists))
        if exists:
            layers.append(_file_layer(path, kind))
    named = config_file or env.get("READINESS_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.exists():  # anything else there (a pipe, a folder) is refused unread by _file_layer
            raise ConfigError("--config" if config_file else "READINESS_CONFIG", Refused("config.no_such_file", value=named))
        files.append((str(path), True))
        layers.append(_file_layer(path, "config file"))
    layers.append(_env_layer(env, warn))
    cli_layer = _Layer("command line", base=None)
    for name, value in (cli or {}).items():
        cli_layer.values[name] = (value, f"--{name.replace('_', '-')}")
    for cname, table in (cli_checks or {}).items():
        for k, v in table.items():
            cli_layer.checks.setdefault(cname, {})[k] = (v, "--set")
    layers.append(cli_layer)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        chosen = {k for k in ("profile", "requirements") if k in layer.values}
        if len(chosen) == 2:
            raise ConfigError(layer.values["requirements"][1], Refused("config.profile_and_requirements"))
        for k in chosen:  # a higher source naming a list replaces the lower one's choice of either
            other = "requirements" if k == "profile" else "profile"
            values.pop(other, None)
            sources.pop(other, None)
        for name, (raw, where) in layer.values.items():
            spec = FIELDS[name]
            try:
                value = spec.parse(raw, layer.from_env)
                if spec.path and value:
                    value = _resolve_path(spec, value, layer.base)
            except ValueError as exc:
                # a file line does not say which setting, a variable or option does: name it once,
                # as a sentence where the message reads as one ("--server must be a URL like ...")
                subject = name if layer.base is not None else where
                sentence = str(exc).startswith("must ")
                lead = f"{subject} " if sentence else (f"{name}: " if layer.base is not None else "")
                raise ConfigError(where, exc if isinstance(exc, Worded) else str(exc), lead) from None
            values[name] = value if value != "" or spec.default == "" else None
            sources[name] = where if layer.origin in ("environment", "command line") else f"{where} ({layer.origin})"

    if values.get("profile") is None and values.get("requirements") is None:
        values["profile"] = DEFAULT_PROFILE

    check_values: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for cname, table in layer.checks.items():
            if broken and cname in broken and checks is not None and cname not in checks:
                warn(Worded("config.warn_unchecked", where=table[next(iter(table))][1], check=cname))
                continue
            for key, (value, where) in table.items():
                validated = validate_check_setting(checks, cname, key, value, where)
                check_values.setdefault(cname, {})[key] = validated
                sources[f"checks.{cname}.{key}"] = where if layer.origin in ("environment", "command line") \
                    else f"{where} ({layer.origin})"
    return RunConfig(**{k: values.get(k, FIELDS[k].default) for k in FIELDS}, interactive=interactive,
                     checks=check_values, sources=sources, files=tuple(files))


def validate_check_setting(checks: Mapping[str, type[Check]] | None, cname: str, key: str, value: Any,
                           where: str) -> Any:
    """One check setting, validated against the installed check's declaration (items too)."""
    if checks is None:
        return value
    cls = checks.get(cname)
    if cls is None:
        raise ConfigError(where, Refused("config.no_check", check=cname, installed=", ".join(sorted(checks))))

    def err(_line: Any, what: str, **fill: Any) -> ConfigError:
        return ConfigError(where, Worded(f"profile_error.{what}", **fill))

    return validate_settings(cls, cname, {key: value}, lambda k: None, err)[key]
