"""HTTP for the webhook and chat backends: the standard library's urllib.

A webhook call is one small JSON POST; urllib does that with a timeout and TLS
verification and adds no dependency (httpx would bring connection pools and HTTP/2
that one POST per message does not use). Redirects are refused: a webhook that
moved must be reconfigured, not followed with the body dropped. A URL's
``user:password@`` is sent as an ``Authorization: Basic`` header.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import qflow

__all__ = ["DeliveryError", "post_json"]

USER_AGENT = f"qflow/{qflow.__version__}"


class DeliveryError(Exception):
    """A send failed; the message says why, with secrets taken out."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def post_json(url: str, body: Any, *, timeout: float, headers: Mapping[str, str] | None = None,
              raw: bytes | None = None) -> tuple[int, bytes]:
    """POST *body* as JSON (or the bytes *raw*) to *url*; return status and body.

    :raises DeliveryError: refused, timed out, or any status that is not 2xx.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise DeliveryError(f"'{qflow.redact(url)}' is not an http or https URL")
    shown = qflow.redact(url)
    target, auth = _basic_auth(url)
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(target, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **auth, **(headers or {})})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(1 << 16)
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(300).decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        raise DeliveryError(f"HTTP {exc.code} from {shown}{': ' + text if text else ''}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise DeliveryError(f"no answer from {shown} within {timeout:g}s") from None
        raise DeliveryError(f"cannot reach {shown}: {reason}") from None
    except (TimeoutError, socket.timeout):
        raise DeliveryError(f"no answer from {shown} within {timeout:g}s") from None
    except OSError as exc:
        raise DeliveryError(f"connection to {shown} failed: {exc}") from None


def _basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """*url* without its ``user:password@`` and the ``Authorization: Basic`` header they
    become (RFC 7617, UTF-8); urllib would take the user info for part of the host."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, {}
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def json_answer(status: int, body: bytes) -> Any:
    """The JSON a chat API answered with, or None when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
