"""Who may use the worker's web API: tokens with roles, and the verdict audit log.

Tokens come from a file (``tollguard worker --tokens-file FILE`` or ``TOLLGUARD_API_TOKENS_FILE``),
never from the rules or the command line, and/or from ``TOLLGUARD_API_TOKEN`` (one token
named ``noc`` with the role ``noc``, as before roles existed). The file is YAML::

    tokens:
      - name: noc-anna            # the identity: a verdict's "by", the audit log's "who"
        role: noc                 # noc | switch | viewer
        token: "…at least 16 characters…"
      - name: kamailio-1
        role: switch
        sha256: "9f86d08…"        # or the token's SHA-256 (hex) instead of the token itself

A file other users may read or write (any group or other permission, e.g. mode 640 or 644) is
refused: ``chmod 600``. Roles (least privilege):

========  =====================================================================
role      may
========  =====================================================================
noc       read the page, its JSON endpoints and ``/metrics``; post verdicts;
          call ``/v1/authorize`` (to check what a switch would be told)
switch    call ``/v1/authorize``
viewer    read the page, its JSON endpoints, ``/v1/calls`` and ``/metrics``
========  =====================================================================

A request without a token, or with one no entry has, gets 401; a known token whose role
may not do what is asked gets 403. Credentials: ``Authorization: Bearer <token>``, or HTTP
basic authentication with the token as the password (any user name; a browser on the page).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from aiohttp import web as aioweb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tollguard.rules import yaml_fault

Role = Literal["noc", "switch", "viewer"]
Action = Literal["read", "verdict", "authorize"]

#: Environment: the tokens file, the single-token fallback, the audit log path.
TOKENS_FILE_ENV = "TOLLGUARD_API_TOKENS_FILE"
TOKEN_ENV = "TOLLGUARD_API_TOKEN"  # noqa: S105 - a variable's name, not a secret
AUDIT_LOG_ENV = "TOLLGUARD_AUDIT_LOG"
#: Shortest token accepted (characters).
MIN_TOKEN_CHARS = 16
#: What each role may do.
PERMISSIONS: dict[Role, frozenset[Action]] = {
    "noc": frozenset({"read", "verdict", "authorize"}),
    "switch": frozenset({"authorize"}),
    "viewer": frozenset({"read"}),
}
#: Key under which the middleware leaves the :class:`Identity` on the aiohttp request.
IDENTITY_KEY: aioweb.RequestKey[Identity] | str = "tollguard.identity"


#: Permission bits of a tokens file that let users other than its owner read or write it (refused).
OPEN_TO_OTHERS = stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH


class AuthConfigError(ValueError):
    """The tokens file or token settings are unusable (the worker does not start; the message says why)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: the token's ``name`` and ``role``."""

    name: str
    role: Role

    def may(self, action: Action) -> bool:
        """Whether this identity's role permits ``action``."""
        return action in PERMISSIONS[self.role]


if hasattr(aioweb, "RequestKey"):  # aiohttp >= 3.12 wants typed keys
    IDENTITY_KEY = aioweb.RequestKey("tollguard.identity", Identity)


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    role: Role
    token: str | None = Field(default=None, min_length=MIN_TOKEN_CHARS)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")

    @model_validator(mode="after")
    def _one_secret(self) -> _TokenEntry:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of token or sha256")
        return self

    def digest(self) -> bytes:
        if self.sha256 is not None:
            return bytes.fromhex(self.sha256)
        return hashlib.sha256((self.token or "").encode("utf-8")).digest()


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[_TokenEntry] = Field(min_length=1)


class TokenRegistry:
    """Known tokens (kept as SHA-256 digests) and their identities.

    Parameters
    ----------
    entries : mapping of bytes to Identity
        SHA-256 digest of a token -> who holds it.
    """

    def __init__(self, entries: Mapping[bytes, Identity]) -> None:
        self._entries = dict(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def identities(self) -> list[Identity]:
        """Every identity, in name order."""
        return sorted(self._entries.values(), key=lambda i: i.name)

    def authenticate(self, header: str | None) -> Identity | None:
        """The identity of an ``Authorization`` header's token (Bearer, or Basic with it as the password).

        >>> reg = TokenRegistry({hashlib.sha256(b"abcdefghijklmnop").digest(): Identity("anna", "noc")})
        >>> reg.authenticate("Bearer abcdefghijklmnop"), reg.authenticate("Bearer nope"), reg.authenticate(None)
        (Identity(name='anna', role='noc'), None, None)
        """
        secret = credentials_of(header)
        if secret is None:
            return None
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        found = None
        for known, identity in self._entries.items():  # compare with every entry: time does not tell which
            if hmac.compare_digest(digest, known):
                found = identity
        return found


def credentials_of(header: str | None) -> str | None:
    """The token in an ``Authorization`` header: ``Bearer <token>`` or ``Basic`` with it as the password.

    >>> credentials_of("Basic " + base64.b64encode(b"anyone:tok").decode()), credentials_of("Digest x")
    ('tok', None)
    """
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "basic":
        try:
            return base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return credentials if scheme == "bearer" and credentials else None


def load_tokens_file(path: str | Path) -> TokenRegistry:
    """Read a tokens file (see the module docstring).

    Raises
    ------
    AuthConfigError
        Missing or unreadable file, open to other users (group or others may read or write it),
        invalid YAML (with its line) or entries (the first
        problem with its entry number and field), or two entries with the same name or token.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthConfigError(f"tokens file {path}: {exc.strerror or exc}") from None
    if mode & OPEN_TO_OTHERS:
        raise AuthConfigError(f"tokens file {path} is open to other users (mode {stat.S_IMODE(mode):04o}: group or "
                              f"others may read or write it): chmod 600 {path}")
    try:
        data = yaml.safe_load(text)
        parsed = _TokensFile.model_validate(data)
    except yaml.YAMLError as exc:
        line, problem = yaml_fault(exc, text)
        where = f"{path}:{line}" if line is not None else str(path)
        raise AuthConfigError(f"tokens file {where}: not YAML: {problem}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        if len(loc) >= 2 and loc[0] == "tokens" and isinstance(loc[1], int):
            loc[1] = f"entry {loc[1] + 1}"  # people count entries from 1
        where = ".".join(str(p) for p in loc)
        raise AuthConfigError(f"tokens file {path}: {where}: {first['msg']}") from None
    entries: dict[bytes, Identity] = {}
    names: set[str] = set()
    for entry in parsed.tokens:
        if entry.name in names:
            raise AuthConfigError(f"tokens file {path}: name {entry.name!r} given twice")
        digest = entry.digest()
        if digest in entries:
            raise AuthConfigError(f"tokens file {path}: {entry.name!r} has the token of {entries[digest].name!r}")
        names.add(entry.name)
        entries[digest] = Identity(entry.name, entry.role)
    return TokenRegistry(entries)


def token_registry(environ: Mapping[str, str] | None = None, tokens_file: str | Path | None = None) -> (
        TokenRegistry | None):
    """The tokens configured by ``tokens_file`` (else ``TOLLGUARD_API_TOKENS_FILE``) and ``TOLLGUARD_API_TOKEN``.

    Returns None when neither is set (no authentication: the server binds to loopback only).

    Raises
    ------
    AuthConfigError
        See :func:`load_tokens_file`; also a ``TOLLGUARD_API_TOKEN`` shorter than MIN_TOKEN_CHARS.
    """
    env = os.environ if environ is None else environ
    path = tokens_file or (env.get(TOKENS_FILE_ENV) or "").strip() or None
    token = (env.get(TOKEN_ENV) or "").strip() or None
    if path is None and token is None:
        return None
    entries: dict[bytes, Identity] = {}
    if path is not None:
        entries.update(load_tokens_file(path)._entries)  # noqa: SLF001 (same module)
    if token is not None:
        if len(token) < MIN_TOKEN_CHARS:
            raise AuthConfigError(f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters")
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        if digest not in entries:
            entries[digest] = Identity("noc", "noc")
    return TokenRegistry(entries)


def action_of(method: str, path: str) -> Action:
    """What a request asks to do: ``verdict`` (POST /api/verdicts), ``authorize`` (/v1/authorize) or ``read``.

    >>> action_of("POST", "/api/verdicts"), action_of("GET", "/v1/authorize"), action_of("GET", "/noc/")
    ('verdict', 'authorize', 'read')
    """
    if path.rstrip("/") == "/api/verdicts" and method.upper() != "GET":
        return "verdict"
    if path.rstrip("/") == "/v1/authorize":
        return "authorize"
    return "read"


def auth_middleware(
    registry: TokenRegistry, audit: AuditLog | None = None
) -> Callable[..., Awaitable[aioweb.StreamResponse]]:
    """aiohttp middleware: 401 without a known token, 403 when its role may not do what is asked.

    The :class:`Identity` is left on the request under :data:`IDENTITY_KEY`. A verdict refused
    here (401 or 403) is written to ``audit`` too (its body unread: ``verdict`` null).
    """

    def refused(request: aioweb.Request, action: Action, identity: Identity | None, status: int,
                reason: str) -> None:
        if audit is None or action != "verdict":
            return
        try:
            audit.write("api", None, identity=identity, peer=request.remote, status=status, reason=reason)
        except OSError:
            pass  # the request is refused anyway

    @aioweb.middleware
    async def authenticate(
        request: aioweb.Request, handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
    ) -> aioweb.StreamResponse:
        header = request.headers.get("Authorization")
        identity = registry.authenticate(header)
        action = action_of(request.method, request.path)
        if identity is None:
            reason = ("unknown token: no token of the worker's tokens file matches" if header else
                      "authentication required: Authorization: Bearer <token>")
            refused(request, action, None, 401, reason)
            # machines get a Bearer challenge; the pages a Basic one, so a browser asks for the token
            machine = request.path.startswith("/v1/") or request.path == "/metrics"
            challenge = 'Bearer realm="tollguard"' if machine else 'Basic realm="tollguard", charset="UTF-8"'
            return aioweb.json_response({"error": reason}, status=401, headers={"WWW-Authenticate": challenge})
        if not identity.may(action):
            reason = f"forbidden: {identity.name} (role {identity.role}) may not {action}"
            refused(request, action, identity, 403, reason)
            return aioweb.json_response({"error": reason}, status=403)
        request[IDENTITY_KEY] = identity
        return await handler(request)

    return authenticate


def identity_of(request: Any) -> Identity | None:
    """The identity the middleware authenticated for ``request`` (None without authentication)."""
    try:
        found = request.get(IDENTITY_KEY)
    except AttributeError:
        return None
    return found if isinstance(found, Identity) else None


class AuditLog:
    """Append-only JSON-lines file of every verdict posted, applied or refused (one object a line, fsynced).

    Each line: ``{"at": ISO time written, "what": "api" | "applied" | "refused", "who": name or
    null, "role": role or null, "peer": address or null, "verdict": {...}, "status": int or
    null, "reason": text or null}``.

    Parameters
    ----------
    path : str or Path
        The file (its directory is created); opened for append on every write.

    Raises
    ------
    OSError
        From :meth:`write` when the file cannot be written (the caller refuses the verdict).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, what: str, verdict: Mapping[str, Any] | None, *, identity: Identity | None = None,
              peer: str | None = None, status: int | None = None, reason: str | None = None) -> None:
        """Append one record and fsync it."""
        line = orjson.dumps({
            "at": datetime.now(UTC).isoformat(), "what": what,
            "who": identity.name if identity else None, "role": identity.role if identity else None,
            "peer": peer, "verdict": dict(verdict) if verdict is not None else None,
            "status": status, "reason": reason,
        }) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)


def audit_log_path(environ: Mapping[str, str] | None = None, audit_log: str | Path | None = None,
                   datadir: str | Path = "tollguard-data") -> Path:
    """``audit_log``, else ``TOLLGUARD_AUDIT_LOG``, else ``DATADIR/verdicts-audit.jsonl``."""
    env = os.environ if environ is None else environ
    chosen = audit_log or (env.get(AUDIT_LOG_ENV) or "").strip() or Path(datadir) / "verdicts-audit.jsonl"
    return Path(chosen)
