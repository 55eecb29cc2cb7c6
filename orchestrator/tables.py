"""Imports every module that defines tables, so `SQLModel.metadata` is complete.

Alembic's env.py and the tests import this; a feature that adds tables adds its module here.
"""

from sqlmodel import SQLModel

from orchestrator.approvals import models as approval_models
from orchestrator.audit import milestones as audit_milestones
from orchestrator.audit import models as audit_models
from orchestrator.auth import models as auth_models
from orchestrator.catalog import models as catalog_models
from orchestrator.credentials import models as credential_models
from orchestrator.events import models as event_models
from orchestrator.identity import models as identity_models
from orchestrator.kpis import models as kpi_models
from orchestrator.llm import models as llm_models
from orchestrator.notifications import models as notification_models
from orchestrator.reviews import models as review_models
from orchestrator.sunset import models as sunset_models
from orchestrator.timers import models as timer_models

# Every module that defines tables; listed so that importing this module defines them all.
MODEL_MODULES = (
    approval_models,
    audit_models,
    auth_models,
    catalog_models,
    credential_models,
    event_models,
    identity_models,
    llm_models,
    kpi_models,
    notification_models,
    review_models,
    sunset_models,
    timer_models,
    audit_milestones,
)

metadata = SQLModel.metadata
