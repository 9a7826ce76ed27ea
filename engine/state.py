"""A customer's state as bounded pieces, with a format version (the stream's table records).

One busy customer's whole state can pass the broker's 1 MB message limit (a trunking
customer's DIDs, CLIs, windows and dedupe memory grow with its volume). The stream
therefore stores a state as *pieces*, each at most :data:`PIECE_BYTES` of JSON: the JSON
tree of :meth:`engine.core.CustomerState.to_json_dict` is cut where it is too large,
dicts into buckets of keys (by a stable hash), lists into runs of items, so no table
record grows with the customer's volume, and a checkpoint rewrites only the pieces that
changed. The first piece (path ``""``) names the format, so a worker meeting a state
written by another shape migrates it (format 1: the whole state in one record) or
refuses it with :class:`StateFormatError`.

Paths are dot-joined integers (``""``, ``"0"``, ``"3.1"``); a piece is a JSON object:
``{"v": value}`` (a leaf), ``{"d": n}`` (a dict cut in ``n`` buckets, children
``path.0`` … ``path.n-1``), ``{"k": key}`` (a dict of one too-large entry, child ``path.0``),
``{"l": n}`` (a list cut in ``n`` runs, children in order), ``{"one": true}`` (a list of one
too-large item, child ``path.0``). The root piece also carries ``"format"``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from tollguard.errors import TollguardError

#: Largest JSON piece written (bytes): far below Kafka's default 1 MB message limit.
PIECE_BYTES = 64 * 1024

#: Depth after which dict keys are cut in sorted runs rather than by hash (bounds the recursion).
_HASH_DEPTH = 24

#: Format of the pieces written by this version; 1 = the whole state as one JSON record.
STATE_FORMAT = 2


class StateFormatError(TollguardError):
    """A stored state was written in a format this version cannot read."""


def _bucket(key: str, depth: int, buckets: int) -> int:
    # A cryptographic hash salted by depth: keys sharing a bucket at one depth are spread at the next.
    # (crc32 is affine: two keys of equal length that collide once would collide at every depth.)
    digest = hashlib.blake2b(key.encode(), digest_size=8, salt=depth.to_bytes(16, "little")).digest()
    return int.from_bytes(digest, "little") % buckets


def _child(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def _split(node: Any, path: str, depth: int, limit: int, out: dict[str, bytes]) -> None:
    data = orjson.dumps({"v": node})
    if len(data) <= limit or not isinstance(node, dict | list) or not node:
        out[path] = data
        return
    if isinstance(node, dict):
        if len(node) == 1:
            ((key, value),) = node.items()
            out[path] = orjson.dumps({"k": key})
            _split(value, _child(path, 0), depth + 1, limit, out)
            return
        buckets = 2
        while buckets * limit < 2 * len(data):
            buckets *= 2
        parts: list[dict[str, Any]] = [{} for _ in range(buckets)]
        if depth < _HASH_DEPTH:
            for key, value in node.items():
                parts[_bucket(key, depth, buckets)][key] = value
        else:  # never reached in practice; a bound on the recursion whatever the keys
            keys = sorted(node)
            step = -(-len(keys) // buckets)
            for index, key in enumerate(keys):
                parts[index // step][key] = node[key]
        out[path] = orjson.dumps({"d": buckets})
        for index, part in enumerate(parts):
            _split(part, _child(path, index), depth + 1, limit, out)
        return
    if len(node) == 1:
        out[path] = orjson.dumps({"one": True})
        _split(node[0], _child(path, 0), depth + 1, limit, out)
        return
    runs: list[list[Any]] = [[]]
    size = 0
    for item in node:
        item_size = len(orjson.dumps(item)) + 1
        if runs[-1] and size + item_size > limit // 2:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += item_size
    if len(runs) == 1:  # one run still too large as a whole: halve it
        half = len(node) // 2
        runs = [node[:half], node[half:]]
    out[path] = orjson.dumps({"l": len(runs)})
    for index, run in enumerate(runs):
        _split(run, _child(path, index), depth + 1, limit, out)


def split_state(tree: Any, limit: int = PIECE_BYTES) -> dict[str, bytes]:
    """Cut a JSON tree into pieces of at most about ``limit`` bytes each.

    Returns
    -------
    dict
        Path -> JSON bytes of the piece; the root (path ``""``) carries the format.

    Examples
    --------
    >>> pieces = split_state({"a": list(range(50)), "b": "x"}, limit=64)
    >>> len(pieces) > 1 and max(len(p) for p in pieces.values()) <= 200
    True
    >>> join_state(pieces) == {"a": list(range(50)), "b": "x"}
    True
    """
    out: dict[str, bytes] = {}
    _split(tree, "", 0, limit, out)
    root = orjson.loads(out[""])
    root["format"] = STATE_FORMAT
    out[""] = orjson.dumps(root)
    return out


def _join(pieces: Mapping[str, bytes], path: str) -> Any:
    try:
        piece = orjson.loads(pieces[path])
    except KeyError:
        raise StateFormatError(f"state piece {path or '(root)'!r} is missing") from None
    if "v" in piece:
        return piece["v"]
    if "d" in piece:
        merged: dict[str, Any] = {}
        for index in range(piece["d"]):
            merged.update(_join(pieces, _child(path, index)))
        return merged
    if "k" in piece:
        return {piece["k"]: _join(pieces, _child(path, 0))}
    if "l" in piece:
        items: list[Any] = []
        for index in range(piece["l"]):
            items.extend(_join(pieces, _child(path, index)))
        return items
    if piece.get("one"):
        return [_join(pieces, _child(path, 0))]
    raise StateFormatError(f"state piece {path or '(root)'!r} has no known shape: {sorted(piece)}")


def join_state(pieces: Mapping[str, bytes]) -> Any:
    """Rebuild the JSON tree written by :func:`split_state`.

    Raises
    ------
    StateFormatError
        The root names a format other than :data:`STATE_FORMAT`, or a piece is missing or unknown.
    """
    if "" not in pieces:
        raise StateFormatError("the state has no root piece")
    fmt = orjson.loads(pieces[""]).get("format")
    if fmt != STATE_FORMAT:
        raise StateFormatError(
            f"the state was written in format {fmt!r}; this version reads format {STATE_FORMAT} "
            "(and migrates format 1). Run the tollguard version that wrote it, or start with a new --app-id."
        )
    return _join(pieces, "")
