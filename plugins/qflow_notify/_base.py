"""What every built-in backend shares: the payload's plain data, previews, checks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import qflow

__all__ = ["BackendBase", "plain", "seconds"]

Check = tuple[str, str, "str | None"]  # (config field, message, hint)


def plain(value: Any) -> Any:
    """Frozen payload data as fresh JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def seconds(delta: timedelta) -> float:
    return delta.total_seconds()


class BackendBase:
    """A backend: ``name``, ``kind`` (picks the templates), ``config_type``.

    ``secret_fields`` name the config fields that must come from the environment
    (``${env:NAME}``); a literal secret there is an error at load. For ``url`` only a
    URL that carries a token (``key=``, ``access_token=``, a token path) counts.
    """

    name: str = ""
    kind: str = "chat"
    config_type: type = object
    secret_fields: Sequence[str] = ()
    doc: str = ""

    def check(self, config: Any) -> Sequence[Check]:
        """Problems structuring cannot see (a URL that is not http); empty when fine."""
        return ()

    def send(self, message: qflow.OutboxMessage, config: Any, *, env: Mapping[str, str], now: datetime) -> None:
        raise NotImplementedError

    def preview(self, message: qflow.OutboxMessage, config: Any, *, now: datetime) -> str:
        p = message.payload
        return f"{self.name} -> {message.channel}\nsubject: {p.get('subject', '')}\n\n{p.get('body', '')}\n"

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


def dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, indent=2, sort_keys=False)


def url_check(url: str) -> list[Check]:
    # Only what comes before the first ${env:...} is known at load; it must be the
    # start of an http(s) URL, or could become one ('${env:URL}', 'https${env:X}').
    literal, env, _ = url.lower().partition("${")
    if not any(literal.startswith(s) or (env and s.startswith(literal)) for s in ("http://", "https://")):
        return [("url", f"'{qflow.redact(url)}' is not an http or https URL",
                 "write the full webhook URL, e.g. https://..., or '${env:NAME}'")]
    return []
