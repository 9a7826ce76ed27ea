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

Format 3 (this version) makes a checkpoint's writes safe to cut anywhere: a piece other than the
root is stored under the key ``path@digest`` (a digest of its bytes), and a parent names its
children's keys (``"c": [...]``), so a changed piece is written under a new key, never over the one
the stored root still names. A checkpoint writes the new pieces children first and the root (key
``""``) last, then deletes the keys the new root no longer names: a worker killed at any point of
it leaves the old state whole (the new root not yet written) or the new one (written after all its
pieces), and at worst unnamed pieces that the next checkpoint deletes. (Format 2 stored each piece
under its path: a worker killed between the writes of one checkpoint left a root naming a piece not
yet written, found by the fault suite's repeated kills during a backfill: ``state piece
'0.1.0.3.0.2' is missing``.) Format 2 is still read, and rewritten as format 3 when it changes.
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

#: Format of the pieces written by this version; 1 = the whole state as one JSON record, 2 = pieces
#: stored under their paths (read, and rewritten as 3 when they change).
STATE_FORMAT = 3
_READ_FORMATS = (2, 3)


class StateFormatError(TollguardError):
    """A stored state was written in a format this version cannot read."""


def _bucket(key: str, depth: int, buckets: int) -> int:
    # A cryptographic hash salted by depth: keys sharing a bucket at one depth are spread at the next.
    # (crc32 is affine: two keys of equal length that collide once would collide at every depth.)
    digest = hashlib.blake2b(key.encode(), digest_size=8, salt=depth.to_bytes(16, "little")).digest()
    return int.from_bytes(digest, "little") % buckets


def _child(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def _key(path: str, data: bytes) -> str:
    """A piece's key: ``path@digest`` of its bytes (the root's is ``""``, written last)."""
    return f"{path}@{hashlib.blake2b(data, digest_size=8).hexdigest()}" if path else ""


def _put(out: dict[str, bytes], path: str, piece: dict[str, Any]) -> str:
    data = orjson.dumps(piece)
    key = _key(path, data)
    out[key] = data
    return key


def _split(node: Any, path: str, depth: int, limit: int, out: dict[str, bytes]) -> str:
    """Add the pieces of ``node`` to ``out``, children before their parent; returns the node's key."""
    data = orjson.dumps({"v": node})
    if len(data) <= limit or not isinstance(node, dict | list) or not node:
        key = _key(path, data)
        out[key] = data
        return key
    if isinstance(node, dict):
        if len(node) == 1:
            ((name, value),) = node.items()
            child = _split(value, _child(path, 0), depth + 1, limit, out)
            return _put(out, path, {"k": name, "c": [child]})
        buckets = 2
        while buckets * limit < 2 * len(data):
            buckets *= 2
        parts: list[dict[str, Any]] = [{} for _ in range(buckets)]
        if depth < _HASH_DEPTH:
            for name, value in node.items():
                parts[_bucket(name, depth, buckets)][name] = value
        else:  # never reached in practice; a bound on the recursion whatever the keys
            names = sorted(node)
            step = -(-len(names) // buckets)
            for index, name in enumerate(names):
                parts[index // step][name] = node[name]
        children = [_split(part, _child(path, index), depth + 1, limit, out) for index, part in enumerate(parts)]
        return _put(out, path, {"d": buckets, "c": children})
    if len(node) == 1:
        child = _split(node[0], _child(path, 0), depth + 1, limit, out)
        return _put(out, path, {"one": True, "c": [child]})
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
    children = [_split(run, _child(path, index), depth + 1, limit, out) for index, run in enumerate(runs)]
    return _put(out, path, {"l": len(runs), "c": children})


def split_state(tree: Any, limit: int = PIECE_BYTES) -> dict[str, bytes]:
    """Cut a JSON tree into pieces of at most about ``limit`` bytes each.

    Returns
    -------
    dict
        Key -> JSON bytes of the piece, in write order: every piece after the pieces it names, the
        root (key ``""``, which carries the format) last. A key other than the root's is
        ``path@digest``, so equal keys mean equal bytes.

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
    root = orjson.loads(out.pop(""))
    root["format"] = STATE_FORMAT
    out[""] = orjson.dumps(root)
    return out


def _join(pieces: Mapping[str, bytes], key: str, fmt: int) -> Any:
    try:
        piece = orjson.loads(pieces[key])
    except KeyError:
        raise StateFormatError(f"state piece {key or '(root)'!r} is missing") from None
    if "v" in piece:
        return piece["v"]
    if fmt >= 3:
        children = piece.get("c", [])
    else:  # format 2: children stored under their paths
        count = piece.get("d") or piece.get("l") or 1
        children = [_child(key, index) for index in range(count)]
    if "d" in piece:
        merged: dict[str, Any] = {}
        for child in children:
            merged.update(_join(pieces, child, fmt))
        return merged
    if "k" in piece:
        return {piece["k"]: _join(pieces, children[0], fmt)}
    if "l" in piece:
        items: list[Any] = []
        for child in children:
            items.extend(_join(pieces, child, fmt))
        return items
    if piece.get("one"):
        return [_join(pieces, children[0], fmt)]
    raise StateFormatError(f"state piece {key or '(root)'!r} has no known shape: {sorted(piece)}")


def join_state(pieces: Mapping[str, bytes]) -> Any:
    """Rebuild the JSON tree written by :func:`split_state`.

    Pieces the root does not name (left by a checkpoint cut short) are ignored.

    Raises
    ------
    StateFormatError
        The root names a format other than 2 or :data:`STATE_FORMAT`, or a piece is missing or unknown.
    """
    if "" not in pieces:
        raise StateFormatError("the state has no root piece")
    fmt = orjson.loads(pieces[""]).get("format")
    if fmt not in _READ_FORMATS:
        raise StateFormatError(
            f"the state was written in format {fmt!r}; this version reads format {STATE_FORMAT} "
            "(and migrates formats 1 and 2). Run the tollguard version that wrote it, or start with a new --app-id."
        )
    return _join(pieces, "", fmt)


def state_format(pieces: Mapping[str, bytes]) -> int | None:
    """The format named by the root piece (None without a root)."""
    root = pieces.get("")
    return None if root is None else orjson.loads(root).get("format")
