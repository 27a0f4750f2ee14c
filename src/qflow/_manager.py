"""Building a plugin manager. There is no global one: each engine gets its own."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import re
from collections.abc import Iterable

import pluggy

from qflow import hookspecs
from qflow.diagnostics import did_you_mean
from qflow.errors import PluginError
from qflow.hookspecs import PROJECT

__all__ = ["BUILTIN_DISTRIBUTION", "make_plugin_manager"]

#: Entry points of this distribution are the built-in plugins.
BUILTIN_DISTRIBUTION = "qflow"


def _env_list(name: str) -> set[str]:
    return {p.strip() for p in os.environ.get(name, "").split(",") if p.strip()}


def make_plugin_manager(
    *,
    autoload: bool = True,
    builtins: bool = True,
    blocked: Iterable[str] = (),
    plugins: Iterable[object | tuple[object, str]] = (),
) -> pluggy.PluginManager:
    """Return a new plugin manager with qflow's hooks and plugins registered.

    :param autoload: load third-party plugins from the ``qflow`` entry-point group
        (``QFLOW_DISABLE_PLUGIN_AUTOLOAD=1`` turns this off).
    :param builtins: load qflow's own plugins (``rules``, ``sla``, ``escalation``,
        ``notify``, ``loop``, ``assess``, ``sqlite``, ``postgres``); they are entry
        points too, so a name in *blocked* removes one. They are registered before
        third-party ones, which are therefore called first.
    :param blocked: entry-point or plugin names never to register; joined with
        ``QFLOW_BLOCKED_PLUGINS=a,b``.
    :param plugins: plugin objects (or ``(object, name)`` pairs) from the embedding
        application, registered last so that they are called first.
    """
    from qflow._vocabulary import VocabularyPlugin

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    block = set(blocked) | _env_list("QFLOW_BLOCKED_PLUGINS")
    for name in block:
        pm.set_blocked(name)
    pm.register(VocabularyPlugin(), name="qflow.vocabulary")

    if os.environ.get("QFLOW_DISABLE_PLUGIN_AUTOLOAD"):
        autoload = False
    # The built-ins first, whatever order the environment lists distributions in: a
    # plugin registered later is called earlier, so a site's plugin runs before them.
    found = [(ep, (ep.dist.name if ep.dist is not None else None) == BUILTIN_DISTRIBUTION)
             for ep in importlib.metadata.entry_points(group=PROJECT)]
    for ep, is_builtin in sorted(found, key=lambda item: not item[1]):
        if (is_builtin and not builtins) or (not is_builtin and not autoload):
            continue
        if ep.name in block or pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin '{ep.name}' ({ep.value}) failed to import: {type(exc).__name__}: {exc}; "
                f"fix or uninstall it, or block it with QFLOW_BLOCKED_PLUGINS={ep.name}"
            ) from exc
        _register(pm, plugin, ep.name, f"'{ep.name}' ({ep.value})")

    for item in plugins:
        obj, name = item if isinstance(item, tuple) else (item, None)
        if name is not None and pm.is_blocked(name):
            continue
        _register(pm, obj, name, f"'{name}'" if name is not None else repr(obj))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{_unknown_hook(pm, exc)}; every hook a plugin implements must be a qflow_* hook") from exc
    return pm


def _unknown_hook(pm: pluggy.PluginManager, exc: pluggy.PluginValidationError) -> str:
    """pluggy's "unknown hook 'x' in plugin <repr>" with the plugin's name for its repr
    and the hook it was most likely meant to be."""
    text = str(exc)
    found = re.match(r"unknown hook '(\w+)' in plugin ", text)
    if found is None:
        return text
    hook = found.group(1)
    name = pm.get_name(exc.plugin) if exc.plugin is not None else None
    shown = f"'{name}'" if name is not None and name != str(id(exc.plugin)) else repr(exc.plugin)
    meant = did_you_mean(hook, [n for n in dir(hookspecs) if n.startswith("qflow_")])
    return f"unknown hook '{hook}' in plugin {shown}" + (f" ({meant})" if meant else "")


def _register(pm: pluggy.PluginManager, plugin: object, name: str | None, shown: str) -> None:
    """Register *plugin*; a hook implementation that does not fit its spec (an argument
    the hook does not pass, a wrapper that is no generator) is a :class:`PluginError`
    naming the plugin, the hook and what to do, not pluggy's traceback."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        todo = "fix the plugin" + (f", or block it with QFLOW_BLOCKED_PLUGINS={name}" if name is not None else "")
        raise PluginError(f"plugin {shown} does not fit qflow's hooks: {_misfit(exc, plugin)}; {todo}") from exc


def _misfit(exc: pluggy.PluginValidationError, plugin: object) -> str:
    """What is wrong, in one line: for an argument the hook does not pass, the hook's
    own arguments; else pluggy's words."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    found = re.search(r"for hook '(\w+)'", lines[0]) if lines else None
    spec = getattr(hookspecs, found.group(1), None) if found else None
    impl = getattr(plugin, found.group(1), None) if found else None
    if spec is not None and impl is not None:
        try:
            passed = list(inspect.signature(spec).parameters)
            taken = [p for p in inspect.signature(impl).parameters if p != "self"]
        except (TypeError, ValueError):
            passed, taken = [], []
        unknown = [p for p in taken if p not in passed]
        if unknown:
            return (f"{found.group(1)} takes {', '.join(map(repr, unknown))}, which the hook does not pass "
                    f"(it passes {', '.join(passed) or 'nothing'}; take only those you use)")
    return "; ".join(lines[1:] if found else lines)
