"""The plugin manager factory: no globals, built-ins as entry points, blocking."""

from __future__ import annotations

import pytest

import qflow
from qflow import hookimpl


def names(pm):
    return sorted(n for n, p in pm.list_name_plugin() if p is not None)


def test_builtins_are_entry_points_and_can_be_blocked(monkeypatch):
    monkeypatch.delenv("QFLOW_BLOCKED_PLUGINS", raising=False)
    assert {"qflow.vocabulary", "rules", "sla"} <= set(names(qflow.make_plugin_manager(autoload=False)))
    assert "sla" not in names(qflow.make_plugin_manager(autoload=False, blocked=["sla"]))
    monkeypatch.setenv("QFLOW_BLOCKED_PLUGINS", "rules, sla, sqlite, postgres, notify, loop, escalation, assess")
    assert names(qflow.make_plugin_manager(autoload=False)) == ["qflow.vocabulary"]


def test_each_call_builds_a_new_manager():
    a, b = qflow.make_plugin_manager(autoload=False), qflow.make_plugin_manager(autoload=False)
    assert a is not b
    a.register(object(), name="only-in-a")
    assert not b.has_plugin("only-in-a")


def test_autoload_off_by_environment(monkeypatch):
    monkeypatch.setenv("QFLOW_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = qflow.make_plugin_manager()
    assert "site_example" not in names(pm)
    assert {"rules", "sla"} <= set(names(pm))


def test_builtins_off():
    assert names(qflow.make_plugin_manager(autoload=False, builtins=False)) == ["qflow.vocabulary"]


class Misnamed:
    @hookimpl
    def qflow_clasify(self, incident):  # a typo must not pass silently
        return None


def test_a_hook_with_no_spec_is_an_error():
    with pytest.raises(qflow.PluginError) as info:
        qflow.make_plugin_manager(autoload=False, plugins=[(Misnamed(), "typo")])
    assert str(info.value).startswith("unknown hook 'qflow_clasify' in plugin")
    assert str(info.value).endswith("; every hook a plugin implements must be a qflow_* hook")


def test_embedding_application_plugins_are_registered_unless_blocked():
    class App:
        @hookimpl
        def qflow_notify(self, notification):
            pass

    app = App()
    assert qflow.make_plugin_manager(autoload=False, plugins=[(app, "app")]).has_plugin("app")
    assert not qflow.make_plugin_manager(autoload=False, plugins=[(app, "app")], blocked=["app"]).has_plugin("app")
