"""Every table of the local model, imported in one place so metadata is complete (create_all, migrations)."""

from service.crm.models import (
    Account,
    Activity,
    ActivityContact,
    Contact,
    CrmConnection,
    Opportunity,
    OpportunityContact,
    Owner,
)
from service.sync.models import SyncRun, SyncSkip, SyncState

__all__ = [
    "Account",
    "Activity",
    "ActivityContact",
    "Contact",
    "CrmConnection",
    "Opportunity",
    "OpportunityContact",
    "Owner",
    "SyncRun",
    "SyncSkip",
    "SyncState",
]
