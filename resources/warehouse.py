"""The DuckDB warehouse as a Dagster resource.

Every asset that writes it runs in the `warehouse` pool (limit 1 in `dagster.yaml`),
so runs queue for the single writer slot instead of failing on DuckDB's file lock.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.warehouse import Warehouse
from resources.fixed import FixedConfig

WAREHOUSE_POOL = "warehouse"


class WarehouseResource(FixedConfig, ConfigurableResource):
    path: str = Field(description="DuckDB file of the business tables (MAMCRAWLER_WAREHOUSE)")
    lock_timeout_s: float = Field(default=120.0, description="How long a writer waits for another one to finish")

    def get(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s)
