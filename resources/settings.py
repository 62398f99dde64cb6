"""What "complete" means to this collector: novellas, language, which authors to follow."""

from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.completeness import CompletenessSettings


class CompletenessOptions(ConfigurableResource):
    include_novellas: bool = Field(default=False, description="Novellas and prequels count towards completeness")
    language: str = Field(default="English", description="Books in other languages (translations) are not listed")
    follow_min_books: int = Field(default=3, ge=1, description="Authors with this many owned books are followed")

    def settings(self) -> CompletenessSettings:
        return CompletenessSettings(
            include_novellas=self.include_novellas, language=self.language, follow_min_books=self.follow_min_books
        )
