"""Imports every module that defines tables, so `SQLModel.metadata` is complete.

Alembic's env.py and the tests import this; a feature that adds tables adds its module here.
"""

from sqlmodel import SQLModel

from orchestrator.approvals import models as approval_models  # noqa: F401
from orchestrator.audit import models as audit_models  # noqa: F401
from orchestrator.auth import models as auth_models  # noqa: F401
from orchestrator.catalog import models as catalog_models  # noqa: F401
from orchestrator.credentials import models as credential_models  # noqa: F401
from orchestrator.events import models as event_models  # noqa: F401
from orchestrator.notifications import models as notification_models  # noqa: F401
from orchestrator.reviews import models as review_models  # noqa: F401
from orchestrator.sunset import models as sunset_models  # noqa: F401
from orchestrator.timers import models as timer_models  # noqa: F401

metadata = SQLModel.metadata
