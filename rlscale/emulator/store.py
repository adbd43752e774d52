"""Stored API objects (leases, events, HPAs) with the apiserver's write rules.

One ``resourceVersion`` counter serves every object, as etcd's revision does:
each write that changes an object takes the next value, and a write that
changes nothing keeps the old one (the apiserver skips no-op updates). A PUT
or PATCH whose body carries ``metadata.resourceVersion`` must name the
stored version, or it fails with 409 Conflict.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rlscale.emulator.objects import (
    JSON,
    already_exists,
    apply_patch,
    bad_request,
    conflict,
    invalid,
    label_selector,
    not_found,
    rfc3339,
)

SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


@dataclass(frozen=True)
class Resource:
    """A REST resource: where it lives in the API and what its objects are called."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
EVENTS = Resource("", "v1", "events", "Event")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
STORED = (LEASES, EVENTS, HPAS)


class Versions:
    """The cluster-wide resourceVersion counter."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> str:
        self.last += 1
        return str(self.last)


class Store:
    """Objects of the stored resources, by (resource, namespace, name). Callers hold the emulator's lock."""

    def __init__(self, versions: Versions, clock: Callable[[], float]) -> None:
        self.versions, self.clock = versions, clock  # clock: epoch seconds for server-set timestamps
        self._objects: dict[tuple[Resource, str], dict[str, JSON]] = {}

    def list(self, res: Resource, namespace: str | None, selector: str | None = None) -> JSON:
        """A ``<Kind>List``; ``namespace`` None lists every namespace."""
        match = label_selector(selector)
        items = [
            copy.deepcopy(obj)
            for (r, ns), objs in self._objects.items()
            if r == res and namespace in (None, ns)
            for obj in objs.values()
            if match(obj["metadata"].get("labels") or {})
        ]
        return list_body(res, items, self.versions.last)

    def get(self, res: Resource, namespace: str, name: str) -> JSON:
        return copy.deepcopy(self._find(res, namespace, name))

    def create(self, res: Resource, namespace: str, body: Any, dry_run: bool = False) -> JSON:
        obj = _checked_body(res, namespace, body)
        meta = obj["metadata"]
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(res.kind, "", "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        objs = self._objects.setdefault((res, namespace), {})
        if meta["name"] in objs:
            raise already_exists(res.plural, meta["name"], res.group)
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=rfc3339(self.clock()))
        if dry_run:
            return obj
        meta["resourceVersion"] = self.versions.next()
        objs[meta["name"]] = obj
        return copy.deepcopy(obj)

    def replace(self, res: Resource, namespace: str, name: str, body: Any, dry_run: bool = False) -> JSON:
        obj = _checked_body(res, namespace, body)
        if obj["metadata"].get("name", name) != name:
            raise bad_request(
                f"the name of the object ({obj['metadata']['name']}) does not match the name on the URL ({name})"
            )
        obj["metadata"]["name"] = name
        return self._write(res, namespace, name, obj, dry_run)

    def patch(self, res: Resource, namespace: str, name: str, patch: Any, content_type: str, dry_run: bool) -> JSON:
        current = self._find(res, namespace, name)
        patched = apply_patch(current, patch, content_type)
        return self._write(res, namespace, name, _checked_body(res, namespace, patched), dry_run)

    def delete(self, res: Resource, namespace: str, name: str) -> JSON:
        obj = self._find(res, namespace, name)
        del self._objects[(res, namespace)][name]
        return copy.deepcopy(obj)

    def _find(self, res: Resource, namespace: str, name: str) -> JSON:
        try:
            return self._objects[(res, namespace)][name]
        except KeyError:
            raise not_found(res.plural, name, res.group) from None

    def _write(self, res: Resource, namespace: str, name: str, new: JSON, dry_run: bool) -> JSON:
        old = self._find(res, namespace, name)
        check_version(new, old, res.plural, res.group)
        for key in SERVER_FIELDS:  # the client cannot change these
            if key in old["metadata"]:
                new["metadata"][key] = old["metadata"][key]
            else:
                new["metadata"].pop(key, None)
        if new == old or dry_run:
            return copy.deepcopy(new)
        new["metadata"]["resourceVersion"] = self.versions.next()
        self._objects[(res, namespace)][name] = new
        return copy.deepcopy(new)


def check_version(new: JSON, old: JSON, plural: str, group: str) -> None:
    """The optimistic-concurrency precondition: a version in the request must be the stored one."""
    wanted = (new.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != old["metadata"]["resourceVersion"]:
        raise conflict(plural, old["metadata"]["name"], group)


def list_body(res: Resource, items: Iterable[JSON], resource_version: int) -> JSON:
    items = [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items]
    return {
        "kind": f"{res.kind}List",
        "apiVersion": res.api_version,
        "metadata": {"resourceVersion": str(resource_version)},
        "items": items,
    }


def _checked_body(res: Resource, namespace: str, body: Any) -> JSON:
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a JSON {res.kind} object")
    obj = copy.deepcopy(body)
    obj.update(apiVersion=res.api_version, kind=res.kind)
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if meta.get("namespace", namespace) != namespace:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    meta["namespace"] = namespace
    return obj
