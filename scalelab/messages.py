"""Text shown to a user or written to a file: one line per error, and never a credential.

A storage URL such as `postgresql://alice:s3cret@db/optuna` may reach error messages, logs, run
records and W&B configs; everything that writes one passes it through `redact_url` first.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_KEYS = {"password", "passwd", "pwd", "secret", "token", "access_token", "api_key", "apikey"}
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def redact_url(url: Any) -> Any:
    """`url` with any password (userinfo or query parameter) replaced by `***`.

    `postgresql://alice:s3cret@db:5432/optuna` -> `postgresql://alice:***@db:5432/optuna`.
    Values that are not URLs (None, paths, `sqlite:///x.db`) come back unchanged.
    """
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        # Unparseable: hide everything between '://' and the last '@' to be safe.
        return re.sub(r"://[^/]*@", "://***@", url)
    netloc, changed = parts.netloc, False
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc, changed = f"{userinfo.split(':', 1)[0]}:***@{host}", True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_KEYS for k, _ in pairs):
            pairs = [(k, "***" if k.lower() in _SECRET_KEYS else v) for k, v in pairs]
            query, changed = urlencode(pairs, safe="*"), True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside `text` redacted."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def has_credentials(url: Any) -> bool:
    return isinstance(url, str) and redact_url(url) != url


def first_line(error: BaseException | str) -> str:
    """`Type: first line of the message` (credentials hidden), for one-line reports."""
    if isinstance(error, str):
        text = error.strip()
        return redact_text(text.splitlines()[0] if text else "")
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return redact_text(f"{type(error).__name__}: {line}" if line else type(error).__name__)
