"""The task history file as a Dagster resource (see mamcrawler.task_history for why it is
its own SQLite file and not a warehouse table)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.task_history import TaskHistory
from resources.fixed import FixedConfig


class TaskHistoryResource(FixedConfig, ConfigurableResource):
    path: str = Field(description="SQLite file of the task runs (MAMCRAWLER_TASK_HISTORY)")

    def get(self) -> TaskHistory:
        return TaskHistory(self.path)
