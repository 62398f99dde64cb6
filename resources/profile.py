"""Which profile a run uses, so every materialisation can say so."""

from __future__ import annotations

from dagster import ConfigurableResource

from resources.fixed import FixedConfig


class ProfileResource(FixedConfig, ConfigurableResource):
    name: str
    description: str = ""

    @property
    def is_demo(self) -> bool:
        return self.name == "demo"
