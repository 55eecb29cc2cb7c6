"""Imports every module that defines tables, so `SQLModel.metadata` is complete.

Alembic's env.py and the tests import this; a feature that adds tables adds its module here.
"""

from sqlmodel import SQLModel

from orchestrator import models  # noqa: F401
from orchestrator.credentials import models as credential_models  # noqa: F401
from orchestrator.notifications import models as notification_tables  # noqa: F401
from orchestrator.reviews import models as review_models  # noqa: F401
from orchestrator.sunset import models as sunset_tables  # noqa: F401

metadata = SQLModel.metadata
