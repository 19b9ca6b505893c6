"""The compiled-template cache: used when it is the user's own, ignored (and the template compiled)
when it is damaged, writable by others, or from another version of the template."""

from __future__ import annotations

import os

import jinja2
import pytest

from readiness.render.templatecache import TemplateCache


def _env(folder, sources: dict[str, str]) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.DictLoader(sources), autoescape=True,
                              bytecode_cache=TemplateCache(folder))


def _compiles(monkeypatch, env: jinja2.Environment, name: str) -> int:
    """How many times Jinja compiled a template while ``name`` was loaded and rendered."""
    count = {"n": 0}
    real = jinja2.Environment.compile

    def counting(self, *args, **kwargs):
        count["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    env.get_template(name).render(x="<b>")
    monkeypatch.setattr(jinja2.Environment, "compile", real)
    return count["n"]


def test_a_second_process_reads_the_compiled_template(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    assert _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html") == 1
    assert len(list(folder.iterdir())) == 1
    fresh = _env(folder, {"a.html": "<p>{{ x }}</p>"})  # a new environment: nothing in memory
    assert _compiles(monkeypatch, fresh, "a.html") == 0
    assert fresh.get_template("a.html").render(x="<b>") == "<p>&lt;b&gt;</p>"


def test_a_changed_template_is_compiled_again(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html")
    changed = _env(folder, {"a.html": "<div>{{ x }}</div>"})
    assert _compiles(monkeypatch, changed, "a.html") == 1
    assert changed.get_template("a.html").render(x="1") == "<div>1</div>"


def test_a_damaged_file_is_compiled_over(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html")
    (cached,) = folder.iterdir()
    cached.write_bytes(cached.read_bytes()[:40] + b"\x00garbage")
    env = _env(folder, {"a.html": "<p>{{ x }}</p>"})
    assert _compiles(monkeypatch, env, "a.html") == 1
    assert env.get_template("a.html").render(x="2") == "<p>2</p>"


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_a_file_others_may_write_is_not_run(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html")
    (cached,) = folder.iterdir()
    cached.chmod(0o666)
    assert _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html") == 1
    cached.chmod(0o644)
    folder.chmod(0o777)
    assert _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html") == 1


def test_a_link_at_the_cache_name_is_neither_read_nor_written_through(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    _compiles(monkeypatch, _env(folder, {"a.html": "<p>{{ x }}</p>"}), "a.html")
    (cached,) = folder.iterdir()
    target = tmp_path / "elsewhere"
    target.write_bytes(cached.read_bytes())
    cached.unlink()
    cached.symlink_to(target)
    before = target.read_bytes()
    assert _compiles(monkeypatch, _env(folder, {"a.html": "<b>{{ x }}</b>"}), "a.html") == 1
    assert target.read_bytes() == before  # the new code replaced the link, not the file it pointed to
    assert not cached.is_symlink()


def test_an_unwritable_cache_folder_still_renders(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = _env(blocker / "cache", {"a.html": "<p>{{ x }}</p>"})
    assert env.get_template("a.html").render(x="3") == "<p>3</p>"
