"""Every table of the local model, imported in one place so metadata is complete (create_all, migrations)."""

from service.checkins.models import CheckIn
from service.compute.models import (
    Computation,
    HygieneFinding,
    HygieneHistory,
    HygieneSummary,
    KamAccountScore,
    KamCriterionResult,
    KeyResultContribution,
    KeyResultEvidence,
    KeyResultHistory,
    KeyResultPartTotal,
    KeyResultValue,
    ObjectiveValue,
)
from service.crm.models import (
    Account,
    Activity,
    ActivityContact,
    ActivityOpportunity,
    Contact,
    CrmConnection,
    Opportunity,
    OpportunityContact,
    Owner,
)
from service.goals.models import CompanyGoal
from service.kit.auth import ApiToken
from service.kit.leases import WorkLease
from service.okrs.models import CheckInNote, KamAssessment, ManualValue, OkrMapping, OkrMappingVersion
from service.planning.models import DraftEvent, PlanDraft
from service.sprints.models import SprintResult, SprintRetrospective
from service.sync.models import SyncRun, SyncSkip, SyncState
from service.webhooks.models import WebhookEvent
from service.writeback.models import OutboxRow

__all__ = [
    "DraftEvent",
    "PlanDraft",
    "CheckIn",
    "CheckInNote",
    "CompanyGoal",
    "ApiToken",
    "WebhookEvent",
    "Computation",
    "HygieneFinding",
    "HygieneHistory",
    "HygieneSummary",
    "KamAccountScore",
    "KamAssessment",
    "KamCriterionResult",
    "KeyResultContribution",
    "KeyResultEvidence",
    "KeyResultPartTotal",
    "KeyResultHistory",
    "KeyResultValue",
    "ManualValue",
    "ObjectiveValue",
    "OkrMapping",
    "OkrMappingVersion",
    "Account",
    "Activity",
    "ActivityContact",
    "ActivityOpportunity",
    "Contact",
    "CrmConnection",
    "Opportunity",
    "OpportunityContact",
    "Owner",
    "OutboxRow",
    "SprintResult",
    "SprintRetrospective",
    "SyncRun",
    "WorkLease",
    "SyncSkip",
    "SyncState",
]
