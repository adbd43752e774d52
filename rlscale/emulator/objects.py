"""Kubernetes API objects as JSON, shaped as the apiserver sends them: Status errors, patches, label selectors.

Only what the emulated API needs; field names and nesting follow the
apiserver's wire format so the official ``kubernetes`` client deserializes
every response without help.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A request the apiserver refuses: becomes a ``Status`` body with ``code``."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    kind = f"{resource}.{group}" if group else resource
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "group": group, "kind": resource})


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    kind = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    kind = f"{resource}.{group}" if group else resource
    return ApiError(
        409, "AlreadyExists", f'{kind} "{name}" already exists', {"name": name, "group": group, "kind": resource}
    )


def invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {message}', {"name": name, "kind": kind})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def rfc3339(epoch_s: float, micro: bool = False) -> str:
    """A Kubernetes ``Time`` (whole seconds) or ``MicroTime`` string."""
    t = datetime.fromtimestamp(epoch_s, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


# ---- patches ---------------------------------------------------------------------------
def apply_patch(target: JSON, patch: Any, content_type: str) -> JSON:
    """``target`` with ``patch`` applied as the apiserver would for this content type (``target`` is not changed).

    Strategic merge is applied as a JSON merge patch: the objects patched here
    (Scale, Lease, HPA) have no lists whose merge keys would make a difference
    for the fields a controller sets.
    """
    kind = content_type.split(";")[0].strip().lower()
    if kind in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(patch, dict):
            raise bad_request(f"{kind}: the patch must be a JSON object")
        return merge_patch(target, patch)
    if kind == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request(f"{kind}: the patch must be a JSON array of operations")
        return json_patch(target, patch)
    raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def json_patch(target: JSON, ops: list[Any]) -> JSON:
    """RFC 6902 operations add, replace, remove and test on object members and list items."""
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"json patch: malformed operation {op!r}")
        parent, key = _resolve(doc, op["path"])
        kind = op["op"]
        if kind == "test":
            if _get(parent, key) != op.get("value"):
                raise ApiError(422, "Invalid", f"json patch: test failed at {op['path']}")
        elif kind == "remove":
            _get(parent, key)
            del parent[key]
        elif kind in ("add", "replace"):
            if kind == "replace":
                _get(parent, key)
            if isinstance(parent, list) and kind == "add":
                parent.insert(len(parent) if key == "-" else key, op.get("value"))
            else:
                parent[key] = op.get("value")
        else:
            raise bad_request(f"json patch: unsupported operation {kind!r}")
    return doc


def _resolve(doc: Any, pointer: str) -> tuple[Any, Any]:
    if not pointer.startswith("/"):
        raise bad_request(f"json patch: path {pointer!r} must start with '/'")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    node = doc
    for part in parts[:-1]:
        node = _get(node, _index(node, part))
    return node, _index(node, parts[-1])


def _index(node: Any, part: str) -> Any:
    if isinstance(node, list):
        return part if part == "-" else int(part)
    return part


def _get(node: Any, key: Any) -> Any:
    try:
        return node[key]
    except (KeyError, IndexError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"json patch: no member {key!r}") from exc


# ---- label selectors -------------------------------------------------------------------
_SET_TERM = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def label_selector(text: str | None) -> Callable[[Mapping[str, str]], bool]:
    """A predicate for the ``labelSelector`` query parameter (equality, set and existence terms)."""
    terms = [t for t in _split_terms(text or "") if t.strip()]
    checks = [_term(t) for t in terms]
    return lambda labels: all(check(labels) for check in checks)


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (``env in (a,b),tier=x``)."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _term(term: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _SET_TERM.match(term):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    key = term.strip()
    if key.startswith("!"):
        return lambda labels: key[1:].strip() not in labels
    if not re.fullmatch(r"[\w./-]+", key):
        raise bad_request(f"unable to parse requirement: {term!r}")
    return lambda labels: key in labels


def format_selector(labels: Mapping[str, str]) -> str:
    """``matchLabels`` as the string form ``status.selector`` carries."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
