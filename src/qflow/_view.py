"""The plain-data view of an incident that conditions and rules see.

``severity`` and ``priority`` are not facts of the report: they are None while
classifying and carry the classification (with the decided ``category``) when
routing, so route rules can say ``when: {severity: critical}``.

Rules must never reach a live object: they get fresh dicts, lists and scalars
(datetimes stay datetimes), built by hand here because this runs once per decision.
"""

from __future__ import annotations

from typing import Any

from qflow._frozen import thaw
from qflow.model import Incident

__all__ = ["FIELDS", "incident_view"]

#: Every field path a condition may name. ``*`` accepts any further key.
FIELDS: dict[str, str] = {
    "id": "text",
    "reported_at": "time",
    "occurred_at": "time",
    "channel": "text",
    "category": "text",
    "place": "text",
    "asset": "text",
    "title": "text",
    "description": "text",
    "scope": "text",
    "impact": "number",
    "urgency": "number",
    "severity": "text",
    "priority": "text",
    "reporter": "object",
    "reporter.id": "text",
    "reporter.name": "text",
    "reporter.contact": "text",
    "customer": "object",
    "customer.id": "text",
    "customer.name": "text",
    "customer.tier": "text",
    "customer.contact": "text",
    "customer.extra": "object",
    "customer.extra.*": "any",
    "attachments": "list",
    "attachments.kind": "list",
    "attachments.ref": "list",
    "attachments.name": "list",
    "tags": "list",
    "external_id": "text",
    "extra": "object",
    "extra.*": "any",
}


def incident_view(incident: Incident) -> dict[str, Any]:
    """Return a fresh plain-data copy of *incident* for rules to read."""
    reporter = incident.reporter
    customer = incident.customer
    return {
        "id": incident.id,
        "reported_at": incident.reported_at,
        "occurred_at": incident.occurred_at,
        "channel": incident.channel,
        "category": incident.category,
        "place": incident.place,
        "asset": incident.asset,
        "title": incident.title,
        "description": incident.description,
        "scope": incident.scope,
        "impact": incident.impact,
        "severity": None,
        "priority": None,
        "urgency": incident.urgency,
        "reporter": None if reporter is None else {
            "id": reporter.id, "name": reporter.name, "contact": reporter.contact,
        },
        "customer": None if customer is None else {
            "id": customer.id, "name": customer.name, "tier": customer.tier,
            "contact": customer.contact, "extra": thaw(customer.extra) if customer.extra else {},
        },
        "attachments": [
            {"ref": a.ref, "kind": a.kind, "name": a.name, "added_by": a.added_by}
            for a in incident.attachments
        ] if incident.attachments else [],
        "tags": list(incident.tags),
        "external_id": incident.external_id,
        "extra": thaw(incident.extra) if incident.extra else {},
    }
