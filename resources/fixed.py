"""Resources whose configuration run config cannot change.

Dagster lets the run config of any launch (the UI's launchpad, a GraphQL `launchRun`, a
backfill) override every field of a `ConfigurableResource`. For the services this project
talks to, that would let whoever launches a run point the ABS client at another host with
`api_key: {env: QBITTORRENT_PASSWORD}`, or switch the demo's dry run off. A resource with
`FixedConfig` first in its bases offers an empty config schema, so such run config is
refused when the run is launched; it resolves its own fields (its `EnvVar`s at run time)
instead.
"""

from __future__ import annotations

from typing import Any

from dagster import DagsterInvalidConfigError, InitResourceContext
from dagster._config.post_process import post_process_config
from dagster._config.pythonic_config.resource import ConfigurableResourceFactoryResourceDefinition
from dagster._utils.cached_method import cached_method


class FixedConfig:
    """Mixin for a `ConfigurableResource`: configured in code and the environment, never by run config."""

    @cached_method
    def get_resource_definition(self) -> ConfigurableResourceFactoryResourceDefinition:
        own = super().get_resource_definition()  # type: ignore[misc]

        def resource_fn(context: InitResourceContext) -> Any:
            # The same resolution Dagster applies to run config, applied to our own values only.
            config = post_process_config(self._config_schema.config_type, self._convert_to_config_dictionary())  # type: ignore[attr-defined]
            if not config.success:
                raise DagsterInvalidConfigError(f"Errors while initializing resource {type(self).__name__}", config.errors, config)
            return own.resource_fn(context.replace_config(config.value))

        return ConfigurableResourceFactoryResourceDefinition(
            self.__class__,
            resource_fn=resource_fn,
            config_schema={},
            description=own.description,
            nested_resources=own.nested_resources,
            nested_partial_resources=own.nested_partial_resources,
            dagster_maintained=False,
        )
