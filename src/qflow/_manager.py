"""Building a plugin manager. There is no global one: each engine gets its own."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable

import pluggy

from qflow import hookspecs
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
    :param builtins: load qflow's own plugins (``rules``, ``sla``); they are entry
        points too, so a name in *blocked* removes one.
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
    for ep in importlib.metadata.entry_points(group=PROJECT):
        dist = ep.dist.name if ep.dist is not None else None
        is_builtin = dist == BUILTIN_DISTRIBUTION
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
        pm.register(plugin, name=ep.name)

    for item in plugins:
        obj, name = item if isinstance(item, tuple) else (item, None)
        if name is not None and pm.is_blocked(name):
            continue
        pm.register(obj, name=name)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc}; every hook a plugin implements must be a qflow_* hook") from exc
    return pm
