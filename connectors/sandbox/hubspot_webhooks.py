"""Webhook events the sandbox HubSpot portal's changes would make HubSpot send (today: merges).

HubSpot POSTs a JSON array of events; every event carries ``eventId, subscriptionId, portalId, appId, occurredAt``
(Unix ms), ``subscriptionType, attemptNumber, objectId, changeSource``
(https://developers.hubspot.com/docs/api/webhooks). Nothing here sends anything: a test builds the body and posts it
to okrsync itself, signed as it chooses.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.hubspot_merges import Merge

MERGE_SUBSCRIPTION_TYPES = {"contacts": "contact.merge", "companies": "company.merge", "deals": "deal.merge"}


def merge_event(
    merge: Merge,
    *,
    portal_id: int,
    event_id: int,
    subscription_id: int = 1,
    app_id: int = 1,
    attempt_number: int = 0,
    change_source: str = "CRM_UI",
) -> dict[str, Any]:
    """The event HubSpot sends a ``<type>.merge`` subscription for one merge (``portal.merges[-1]`` after
    ``portal.merge(...)``).

    Merge fields per https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks:
    ``primaryObjectId`` (the record given priority), ``mergedObjectIds`` (an array of the secondary ids),
    ``newObjectId`` ("the Id of the object that was created from the result of the merge. This is separate from
    primaryObjectId because in some cases a new object is created") and ``numberOfPropertiesMoved`` (how many property
    values were transferred: here, the blanks of the primary that the merged record filled). Which id ``objectId``
    holds for a merge that made a new record is not documented; the sandbox sends the new record's id, the object
    that exists after the event. ``changeSource`` defaults to "CRM_UI" (a merge done in HubSpot; "API" for one made
    through the API). Whether HubSpot also sends creation or deletion events for the records involved is not
    documented; none are built.
    """
    subscription_type = MERGE_SUBSCRIPTION_TYPES.get(merge.kind)
    if subscription_type is None:
        raise ValueError(f"no merge subscription type for {merge.kind} (known: {', '.join(MERGE_SUBSCRIPTION_TYPES)})")
    return {
        "eventId": event_id,
        "subscriptionId": subscription_id,
        "portalId": portal_id,
        "appId": app_id,
        "occurredAt": round(merge.occurred_at.timestamp() * 1000),
        "subscriptionType": subscription_type,
        "attemptNumber": attempt_number,
        "objectId": merge.new_id,
        "changeSource": change_source,
        "primaryObjectId": merge.primary_id,
        "mergedObjectIds": [merge.merged_id],
        "newObjectId": merge.new_id,
        "numberOfPropertiesMoved": merge.properties_moved,
    }
