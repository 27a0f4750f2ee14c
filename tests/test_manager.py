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
    assert str(info.value) == ("unknown hook 'qflow_clasify' in plugin 'typo' (did you mean 'qflow_classify'?); "
                               "every hook a plugin implements must be a qflow_* hook")


def test_embedding_application_plugins_are_registered_unless_blocked():
    class App:
        @hookimpl
        def qflow_notify(self, notification):
            pass

    app = App()
    assert qflow.make_plugin_manager(autoload=False, plugins=[(app, "app")]).has_plugin("app")
    assert not qflow.make_plugin_manager(autoload=False, plugins=[(app, "app")], blocked=["app"]).has_plugin("app")


class TakesWhatTheHookDoesNotPass:
    @hookimpl
    def qflow_route(self, incidnet):  # a typo of 'incident'
        return None


class WrapperWithoutYield:
    @hookimpl(wrapper=True)
    def qflow_classify(self, incident):
        return None


def test_a_hook_taking_an_argument_the_spec_does_not_pass_is_a_plugin_error_saying_which():
    with pytest.raises(qflow.PluginError) as info:
        qflow.make_plugin_manager(autoload=False, plugins=[(TakesWhatTheHookDoesNotPass(), "site")])
    assert str(info.value) == (
        "plugin 'site' does not fit qflow's hooks: qflow_route takes 'incidnet', which the hook does not pass "
        "(it passes incident, view, classification, ruleset, now; take only those you use); fix the plugin, "
        "or block it with QFLOW_BLOCKED_PLUGINS=site")


def test_other_misfits_are_plugin_errors_too_in_one_line():
    with pytest.raises(qflow.PluginError) as info:
        qflow.make_plugin_manager(autoload=False, plugins=[(WrapperWithoutYield(), "w")])
    assert str(info.value) == (
        "plugin 'w' does not fit qflow's hooks: hookimpl definition: qflow_classify(incident); Declared as "
        "wrapper=True or hookwrapper=True but function is not a generator function; fix the plugin, or block "
        "it with QFLOW_BLOCKED_PLUGINS=w")


def test_a_misfit_entry_point_plugin_is_named_with_its_module(monkeypatch):
    import importlib.metadata
    import types

    module = types.ModuleType("qflow_broken_site")
    module.qflow_route = hookimpl(lambda incidnet: None)
    ep = importlib.metadata.EntryPoint("broken_site", "qflow_broken_site", "qflow")
    monkeypatch.setattr(ep.__class__, "load", lambda self: module)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [ep])
    with pytest.raises(qflow.PluginError) as info:
        qflow.make_plugin_manager()
    assert str(info.value) == (
        "plugin 'broken_site' (qflow_broken_site) does not fit qflow's hooks: qflow_route takes 'incidnet', "
        "which the hook does not pass (it passes incident, view, classification, ruleset, now; take only those "
        "you use); fix the plugin, or block it with QFLOW_BLOCKED_PLUGINS=broken_site")


@pytest.mark.parametrize("site_listed", ["first", "last"])
def test_an_installed_site_plugin_runs_before_the_builtins_whatever_order_they_are_listed_in(
        monkeypatch, site_listed):
    import importlib.metadata
    import types

    from tests.conftest import BASE, T0

    module = types.ModuleType("qflow_night_desk")
    module.qflow_explain = hookimpl(lambda incident: [qflow.TraceStep("night", None, "info", "the desk is quiet")])
    module.qflow_open_store = hookimpl(lambda url: qflow.MemoryStore() if url.startswith("sqlite://") else None)
    site = importlib.metadata.EntryPoint("night_desk", "qflow_night_desk", "qflow")
    real_load = importlib.metadata.EntryPoint.load
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load",
                        lambda self: module if self.name == "night_desk" else real_load(self))
    builtins = [ep for ep in importlib.metadata.entry_points(group="qflow") if ep.dist and ep.dist.name == "qflow"]
    listed = [site, *builtins] if site_listed == "first" else [*builtins, site]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: listed)
    pm = qflow.make_plugin_manager()
    engine = qflow.Engine(qflow.load_ruleset_text(BASE, plugins=pm), plugins=pm, store="sqlite:///nowhere/x.db")
    assert isinstance(engine.store, qflow.MemoryStore)  # the site's store, not the built-in SQLite one
    trace = engine.decide(qflow.Incident(reported_at=T0, description="x"), T0).trace
    assert [step.section for step in trace][:2] == ["night", "classify"]
