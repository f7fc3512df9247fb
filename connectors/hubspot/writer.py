"""HubSpot write-back: okrsync's custom objects and properties, in batches.

Two modes (``HubSpotConfig.writeback_mode``):

- ``custom_objects`` (Enterprise portals): objectives, key results, contributions and KAM criteria are records of
  the custom objects defined in ``deploy/hubspot/*.schema.json``, upserted in batches of 100 by their unique
  ``okrsync_id`` property (``POST /crm/v3/objects/{type}/batch/upsert``); a contribution is associated with its
  deal and company, a KAM criterion with its company (v4 ``batch/associate/default``). Deals and companies get
  the hygiene and KAM-score properties.
- ``properties``: no custom objects; deals and companies get okrsync's properties only, including a text list of
  the key results the record feeds and (companies) the KAM criteria.

``provision()`` creates what the mode needs (property group and properties, custom-object schemas) and is safe to
run again. HubSpot validates a batch as a whole: when it refuses one for a value (not for a missing property),
the batch is split in halves until the bad record is found, so the other records still land.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from connectors.errors import AuthenticationError, ConfigurationError, FatalError, SkippableError
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.retry import retry_failed_records
from connectors.writes import Target, WriteRequest, WriteResult

log = logging.getLogger(__name__)

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "hubspot"
BATCH_LIMIT = 100  # inputs per batch upsert/update/archive
ASSOCIATION_BATCH_LIMIT = 1000  # v4 batch read takes at most 1,000 since 2025; create is kept to the same
ID_PROPERTY = "okrsync_id"
GROUP = "okrsync"
RETRIABLE_CATEGORIES = frozenset({"RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})
PROVISION_HINT = "run `okrsync provision hubspot`"
SCHEMAS: dict[Target, str] = {
    Target.objective: "okr_objective",
    Target.key_result: "okr_key_result",
    Target.contribution: "okr_contribution",
    Target.kam_criterion: "okr_kam_criterion",
}
RECORD_TYPES = {Target.opportunity: "deals", Target.account: "companies"}
STANDARD_TYPE_IDS = {"deals": "0-3", "companies": "0-2"}


@dataclass(frozen=True)
class HsProp:
    """A HubSpot property a neutral field is written to; ``kind``: string, number (``percent``: a 0–1 fraction
    written as 0–100), bool or datetime."""

    name: str
    kind: str = "string"
    digits: int = 2


_COMPUTED = HsProp("last_computed", "datetime")
MAPPING: dict[Target, dict[str, HsProp]] = {
    Target.objective: {
        "title": HsProp("name"),
        "team": HsProp("team"),
        "cycle": HsProp("cycle"),
        "objective_key": HsProp("objective_key"),
        "progress": HsProp("progress", "percent", 1),
        "status": HsProp("status"),
        "achieved": HsProp("achieved", "bool"),
        "computed_at": _COMPUTED,
    },
    Target.key_result: {
        "objective": HsProp("objective_id"),
        "title": HsProp("name"),
        "team": HsProp("team"),
        "cycle": HsProp("cycle"),
        "kr_key": HsProp("kr_key"),
        "metric": HsProp("metric"),
        "value": HsProp("value", "number", 4),  # ratios are fractions: 0.3314
        "target": HsProp("target", "number", 4),
        "progress": HsProp("progress", "percent", 1),
        "expected": HsProp("expected", "percent", 1),
        "grade": HsProp("grade", "number", 1),
        "status": HsProp("status"),
        "achieved": HsProp("achieved", "bool"),
        "records": HsProp("records", "number", 0),
        "computed_at": _COMPUTED,
        "dashboard_url": HsProp("dashboard_url"),  # the KR's page in okrsync's dashboard
    },
    Target.contribution: {
        "key_result": HsProp("key_result_id"),
        "summary": HsProp("name"),
        "records": HsProp("records", "number", 0),
        "value": HsProp("value", "number"),
        "computed_at": _COMPUTED,
    },
    Target.kam_criterion: {
        "title": HsProp("name"),
        "criterion_key": HsProp("criterion_key"),
        "status": HsProp("status"),
        "source": HsProp("source"),
        "measured": HsProp("measured", "number", 0),
        "comment": HsProp("comment"),
        "account_score": HsProp("account_score", "percent", 1),
        "computed_at": _COMPUTED,
    },
    Target.opportunity: {
        "hygiene_score": HsProp("okrsync_hygiene_score", "percent", 1),
        "hygiene_issues": HsProp("okrsync_hygiene_issues"),
        "hygiene_checked": HsProp("okrsync_hygiene_checked", "datetime"),
        "key_results": HsProp("okrsync_key_results"),
    },
    Target.account: {
        "kam_score": HsProp("okrsync_kam_score", "percent", 1),
        "kam_criteria": HsProp("okrsync_kam_criteria"),
        "key_results": HsProp("okrsync_key_results"),
    },
}
# Neutral fields written as associations (to the record's deal/company), not as properties.
ASSOCIATIONS: dict[Target, dict[str, str]] = {
    Target.contribution: {"opportunity_id": "deals", "account_id": "companies"},
    Target.kam_criterion: {"account_id": "companies"},
}
# What properties mode leaves out: the custom objects, and the per-record lists custom objects make redundant.
_PROPERTIES_ONLY = {Target.opportunity: {"key_results"}, Target.account: {"kam_criteria", "key_results"}}


def written_fields(mode: str) -> dict[Target, frozenset[str]]:
    """The neutral fields written per target in a write-back mode (custom_objects | properties)."""
    written: dict[Target, frozenset[str]] = {}
    for target, props in MAPPING.items():
        names = set(props) | set(ASSOCIATIONS.get(target, {}))
        if mode == "properties":
            if target in SCHEMAS:
                continue
        else:
            names -= _PROPERTIES_ONLY.get(target, set())
        written[target] = frozenset(names)
    return written


def property_value(prop: HsProp, value: Any) -> str:
    """A neutral value as HubSpot stores it (property values are strings; an empty string clears)."""
    if value is None:
        return ""
    if prop.kind == "bool":
        return "true" if value else "false"
    if prop.kind in ("number", "percent"):
        number = float(value) * (100 if prop.kind == "percent" else 1)
        rounded = round(number, prop.digits)
        return str(int(rounded)) if prop.digits == 0 or rounded == int(rounded) else str(rounded)
    if prop.kind == "datetime":
        stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        stamp = stamp.astimezone(UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    return str(value)


def load_definitions(root: Path = DEPLOY_DIR) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The custom-object schemas (by name) and the deal/company property definitions shipped in deploy/hubspot."""
    schemas = {}
    for path in sorted(root.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        schemas[schema["name"]] = schema
    return schemas, json.loads((root / "properties.json").read_text())


class _InvalidBatch(SkippableError):
    """HubSpot refused a batch for a value in one of its records (which one it does not say)."""


@dataclass
class ProvisionReport:
    """What ``provision()`` found and did."""

    mode: str
    custom_objects: bool | None = None  # None: not asked (properties mode)
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def what(self) -> str:
        """What okrsync keeps in the portal in this mode, for a sentence: "okrsync's custom objects"."""
        return f"okrsync's {'custom objects' if self.mode == 'custom_objects' else 'properties'}"


class HubSpotWriter(HubSpotConnector):
    """Writes okrsync's targets to one portal; shares the reader's client, rate guard and retries."""

    def __init__(self, config: HubSpotConfig, *, record_attempts: int = 4, definitions: Path = DEPLOY_DIR) -> None:
        super().__init__(config)
        crm = self._client.crm
        self._batch = crm.objects.batch_api
        self._schemas_api = crm.schemas.core_api
        self._groups_api = crm.properties.groups_api
        self.record_attempts = record_attempts
        self.definitions = definitions
        self._type_ids: dict[str, str] | None = None
        self._association_types: dict[tuple[str, str], int] = {}

    @property
    def mode(self) -> str:
        return self.config.writeback_mode

    def written_fields(self) -> dict[Target, frozenset[str]]:
        return written_fields(self.mode)

    def object_name(self, target: Target) -> str:
        return SCHEMAS.get(target) or RECORD_TYPES[target]

    # -- provisioning ----------------------------------------------------------------------------------------
    def provision(self) -> ProvisionReport:
        """Create the property group, the properties and (custom_objects mode) the custom-object schemas that
        are missing; report what the portal supports. Safe to run again."""
        schemas, properties = load_definitions(self.definitions)
        report = ProvisionReport(mode=self.mode)
        for object_type in ("deals", "companies"):
            self._ensure_group(object_type, report)
            self._ensure_properties(object_type, properties[object_type], report)
        if self.mode == "properties":
            return report
        answer = self._call("schemas", self._schemas_api.get_all_with_http_info)
        existing = {s.name: s for s in answer.results}
        report.custom_objects = True
        for name, schema in schemas.items():
            if name in existing:
                report.present.append(f"custom object {name}")
                self._ensure_properties(existing[name].object_type_id, schema["properties"], report)
                continue
            try:
                self._call("schemas", partial(self._schemas_api.create_with_http_info, schema))
            except AuthenticationError as exc:
                report.custom_objects = False
                report.problems.append(
                    f"HubSpot refused to create custom object {name}: {exc}. Custom objects need an Enterprise"
                    " portal (and scope crm.schemas.custom.write); without them set"
                    " OKRSYNC_HUBSPOT__WRITEBACK_MODE=properties"
                )
                break
            report.created.append(f"custom object {name}")
        self._type_ids = None
        return report

    def _ensure_properties(self, object_type: str, wanted: list[dict[str, Any]], report: ProvisionReport) -> None:
        """Create the properties of ``wanted`` the type lacks. Creating a property needs a ``groupName`` (custom
        object types too): deals and companies get okrsync's group; a custom object's missing property joins the
        group its other okrsync properties are in, or okrsync's group, created on that object when needed."""
        answer = self._call("properties", partial(self._properties_api.get_all_with_http_info, object_type))
        groups = {p.name: p.group_name for p in answer.results}
        group: str | None = GROUP if object_type in ("deals", "companies") else None
        for definition in wanted:
            if definition["name"] in groups:
                continue
            if group is None:
                group = next((groups[d["name"]] for d in wanted if groups.get(d["name"])), None)
                group = group or self._ensure_group(object_type, report)
            body = {k: v for k, v in definition.items() if k != "hasUniqueValue" or v}
            body.setdefault("groupName", group)
            self._call("properties", partial(self._properties_api.create_with_http_info, object_type, body))
            report.created.append(f"{object_type} property {definition['name']}")

    def _ensure_group(self, object_type: str, report: ProvisionReport) -> str:
        groups = self._call("properties", partial(self._groups_api.get_all_with_http_info, object_type))
        if GROUP not in {g.name for g in groups.results}:
            _schemas, properties = load_definitions(self.definitions)
            self._call("properties", partial(self._groups_api.create_with_http_info, object_type, properties["group"]))
            report.created.append(f"{object_type} property group {GROUP}")
        return GROUP

    def object_type_id(self, target: Target) -> str:
        """The portal's objectTypeId of a target's custom object (one schemas call per writer)."""
        if self._type_ids is None:
            answer = self._call("schemas", lambda: self._schemas_api.get_all_with_http_info())
            self._type_ids = {s.name: s.object_type_id for s in answer.results}
            self._association_types = {
                (s.name, a.to_object_type_id): int(a.id) for s in answer.results for a in (s.associations or [])
            }
        name = SCHEMAS[target]
        if name not in self._type_ids:
            raise ConfigurationError(
                f"the HubSpot portal has no custom object {name}: {PROVISION_HINT} (custom objects need an"
                " Enterprise portal), or set OKRSYNC_HUBSPOT__WRITEBACK_MODE=properties"
            )
        return self._type_ids[name]

    def association_type(self, target: Target, to_type: str) -> int:
        """The USER_DEFINED association type id from a target's custom object to deals/companies."""
        self.object_type_id(target)
        key = (SCHEMAS[target], STANDARD_TYPE_IDS[to_type])
        if key not in self._association_types:
            raise ConfigurationError(
                f"the HubSpot custom object {SCHEMAS[target]} has no association with {to_type}: {PROVISION_HINT}"
            )
        return self._association_types[key]

    # -- writing ---------------------------------------------------------------------------------------------
    def _translate(self, name: str, status: int, body: dict[str, Any]) -> Exception:
        message = str(body.get("message") or "")
        if status == 400 and "Unable to infer object type" in message:
            return ConfigurationError(f"HubSpot does not know the object type ({message}) — {PROVISION_HINT}")
        if status == 400 and name in ("batch_upsert", "batch_update"):
            if "PROPERTY_DOESNT_EXIST" in message or "does not exist" in message:
                return ConfigurationError(f"HubSpot refused {name}: {message} — {PROVISION_HINT}")
            if body.get("category") == "VALIDATION_ERROR":
                return _InvalidBatch(message)
        if status == 404 and name in ("batch_upsert", "batch_archive"):
            return ConfigurationError(f"HubSpot has no such object type ({message}) — {PROVISION_HINT}")
        return super()._translate(name, status, body)

    def properties(self, target: Target, request: WriteRequest) -> dict[str, str]:
        """The HubSpot properties of one request (associations excluded)."""
        props = MAPPING[target]
        return {props[n].name: property_value(props[n], v) for n, v in request.values.items() if n in props}

    def upsert(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        """Batch-upsert custom-object records by okrsync id (and associate them), or batch-update deal/company
        properties by record id."""
        if not requests:
            return []
        if target in RECORD_TYPES:
            results = self._retrying(requests, lambda batch: self._update_records(target, batch))
        else:
            results = self._retrying(requests, lambda batch: self._upsert_objects(target, batch))
            self._associate(target, requests, results)
        return results

    def _retrying(self, requests: list[WriteRequest], send: Any) -> list[WriteResult]:
        return retry_failed_records(
            requests,
            lambda pending: [r for chunk in _chunks(pending, BATCH_LIMIT) for r in send(chunk)],
            key=lambda request: request.key,
            crm="HubSpot",
            max_attempts=self.record_attempts,
            wait_base=self.config.retry_wait_base,
            wait_max=self.config.retry_wait_max,
        )

    def _update_records(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        object_type = RECORD_TYPES[target]
        inputs = [{"id": r.key, "properties": self.properties(target, r)} for r in requests]
        return self._bisecting(
            "batch_update",
            requests,
            inputs,
            lambda body: self._batch.update_with_http_info(object_type, body),
            result_key=lambda item: str(item.get("id")),
        )

    def _upsert_objects(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        type_id = self.object_type_id(target)
        inputs = [
            {"idProperty": ID_PROPERTY, "id": r.key, "properties": {ID_PROPERTY: r.key, **self.properties(target, r)}}
            for r in requests
        ]
        return self._bisecting(
            "batch_upsert",
            requests,
            inputs,
            lambda body: self._batch.upsert_with_http_info(type_id, body),
            result_key=lambda item: str((item.get("properties") or {}).get(ID_PROPERTY)),
        )

    def _bisecting(
        self, name: str, requests: list[WriteRequest], inputs: list[dict[str, Any]], call: Any, *, result_key: Any
    ) -> list[WriteResult]:
        try:
            answer = self._call(name, lambda: call({"inputs": inputs}))
        except _InvalidBatch as exc:
            if len(requests) == 1:
                return [WriteResult(requests[0].key, ok=False, code="VALIDATION_ERROR", message=str(exc))]
            middle = len(requests) // 2
            return [
                *self._bisecting(name, requests[:middle], inputs[:middle], call, result_key=result_key),
                *self._bisecting(name, requests[middle:], inputs[middle:], call, result_key=result_key),
            ]
        data = answer.to_dict() if hasattr(answer, "to_dict") else dict(answer or {})
        by_key: dict[str, WriteResult] = {}
        for item in data.get("results") or []:
            key = result_key(item)
            by_key[key] = WriteResult(key, ok=True, crm_id=str(item.get("id")), created=item.get("new"))
        for error in data.get("errors") or []:
            category = str(error.get("category") or "ERROR")
            ids = [str(i) for i in ((error.get("context") or {}).get("ids") or [])]
            for key in ids:
                by_key[key] = WriteResult(
                    key,
                    ok=False,
                    code=category,
                    message=str(error.get("message") or ""),
                    retriable=category in RETRIABLE_CATEGORIES,
                )
        missing = "HubSpot returned no result for this record"
        return [by_key.get(r.key) or WriteResult(r.key, ok=False, code="NO_RESULT", message=missing) for r in requests]

    def _associate(self, target: Target, requests: list[WriteRequest], results: list[WriteResult]) -> None:
        """Associate written records with their deal/company; a failed association fails the record's result."""
        links = ASSOCIATIONS.get(target)
        if not links:
            return
        type_id = self.object_type_id(target)
        by_key = {r.key: r for r in results}
        for neutral, to_type in links.items():
            pairs = [
                (by_key[r.key], str(r.values[neutral]))
                for r in requests
                if by_key[r.key].ok and by_key[r.key].crm_id and r.values.get(neutral)
            ]
            # a custom object's associations are USER_DEFINED types (from its schema), not the "default" ones
            types = [
                {"associationCategory": "USER_DEFINED", "associationTypeId": self.association_type(target, to_type)}
            ]
            for chunk in _chunks(pairs, ASSOCIATION_BATCH_LIMIT):
                inputs = [
                    {"from": {"id": result.crm_id}, "to": {"id": to_id}, "types": types} for result, to_id in chunk
                ]
                body = {"inputs": inputs}
                try:
                    answer = self._call(
                        "associations_write",
                        partial(self._assoc_batch.create_with_http_info, type_id, to_type, body),
                    )
                except FatalError as exc:
                    for result, _to in chunk:
                        result.ok, result.code, result.message = False, "ASSOCIATION_FAILED", str(exc)
                    continue
                data = answer.to_dict() if hasattr(answer, "to_dict") else {}
                failed_targets = {
                    str(i) for e in data.get("errors") or [] for i in (e.get("context") or {}).get("ids") or []
                }
                for result, to_id in chunk:
                    if to_id in failed_targets or result.crm_id in failed_targets:
                        result.ok, result.code = False, "ASSOCIATION_FAILED"
                        result.message = f"could not associate with {to_type} {to_id} (deleted or unknown?)"

    def delete(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        """Archive custom-object records by HubSpot id (``batch/archive``; archiving twice is harmless)."""
        known = [r for r in requests if r.crm_id]
        if known:
            type_id = self.object_type_id(target)
            for chunk in _chunks(known, BATCH_LIMIT):
                body = {"inputs": [{"id": r.crm_id} for r in chunk]}
                self._call("batch_archive", partial(self._batch.archive_with_http_info, type_id, body))
        return [WriteResult(r.key, ok=True, crm_id=r.crm_id) for r in requests]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
