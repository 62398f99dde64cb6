"""What "complete" means to this collector: novellas, language, which authors to follow."""

from dagster import ConfigurableResource
from pydantic import Field

from mamcrawler.acquisition import RetryPolicy, SendLimits
from mamcrawler.completeness import CompletenessSettings
from mamcrawler.release_score import ReleasePreferences
from mamcrawler.retention import RetentionPolicy
from mamcrawler.snapshot_guard import DEFAULT_MAX_SHRINK
from resources.fixed import FixedConfig


class CompletenessOptions(FixedConfig, ConfigurableResource):
    include_novellas: bool = Field(default=False, description="Novellas and prequels count towards completeness")
    language: str = Field(default="English", description="Books in other languages (translations) are not listed")
    follow_min_books: int = Field(default=3, ge=1, description="Authors with this many owned books are followed")
    ownership_min_confidence: str = Field(
        default="MEDIUM", description="An enrichment match this sure (HIGH, MEDIUM or LOW) makes its identifiers and titles owned"
    )

    def settings(self) -> CompletenessSettings:
        return CompletenessSettings(
            include_novellas=self.include_novellas, language=self.language, follow_min_books=self.follow_min_books,
            ownership_min_confidence=self.ownership_min_confidence,
        )


class AcquisitionOptions(FixedConfig, ConfigurableResource):
    """How missing books become downloads, and where finished ones go."""

    dry_run: bool = Field(default=True, description="Record what would be sent to qBittorrent without sending it")
    indexers: list[str] = Field(default=["mam"], description="Where to search: mam, torznab")
    max_searches_per_run: int = Field(default=50, ge=1, description="Missing books searched per run, least recently searched first")
    max_new_per_run: int = Field(default=5, ge=0, description="New downloads sent per run")
    max_active: int = Field(default=10, ge=1, description="Downloads in flight at once")
    formats: list[str] = Field(default=["m4b", "m4a", "mp3", "flac"], description="Accepted formats, best first")
    languages: list[str] = Field(default=["ENG"], description="Accepted release languages (MAM lang codes); empty = any")
    min_seeders: int = Field(default=1, ge=0)
    allow_abridged: bool = False
    freeleech_only: bool = Field(default=False, description="Only grab releases that cost no ratio")
    min_score: float = Field(default=60.0, ge=0, le=100)
    stall_after_s: float = Field(default=12 * 3600, gt=0, description="No data for this long = a failed download")
    max_attempts: int = Field(default=3, ge=1, description="Failed downloads of one book before it is marked failed")
    retry_backoff_s: float = Field(default=6 * 3600, ge=0, description="Wait before the next release; doubles per failure")
    library_dir: str = Field(default="", description="This machine's path of the ABS library folder books are placed in")
    abs_library_id: str = Field(default="", description="The ABS library to import into; default the first book library")
    abs_library_folder: str = Field(default="", description="ABS's own path of library_dir; default that library's first folder")
    download_path_map: str = Field(default="", description="qbittorrent_prefix=local_prefix when qBittorrent sees other paths")
    duration_tolerance: float = Field(default=0.15, ge=0, description="Allowed runtime difference, as a fraction")
    torrent_dir: str = Field(default="", description="Where fetched .torrent files are kept; default data/torrents")
    abs_settle_s: float = Field(
        default=15.0, ge=0, description="Quiet seconds ABS must show after an import before the item is checked "
        "(its folder watcher rescans a new item about 10 s after the files appear)",
    )

    def preferences(self, user_is_vip: bool) -> ReleasePreferences:
        return ReleasePreferences(
            formats=tuple(self.formats), languages=tuple(self.languages), min_seeders=self.min_seeders,
            user_is_vip=user_is_vip, allow_abridged=self.allow_abridged, freeleech_only=self.freeleech_only,
            min_score=self.min_score,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, backoff_s=self.retry_backoff_s)

    def send_limits(self) -> SendLimits:
        return SendLimits(max_new_per_run=self.max_new_per_run, max_active=self.max_active)

    def local_path(self, qbittorrent_path: str) -> str:
        """A path qBittorrent reports, as this machine sees it."""
        remote, _, local = self.download_path_map.partition("=")
        remote = remote.rstrip("/")
        if remote and (qbittorrent_path == remote or qbittorrent_path.startswith(remote + "/")):
            return local.rstrip("/") + qbittorrent_path[len(remote) :]
        return qbittorrent_path


class LibraryOptions(ConfigurableResource):
    """How much a library snapshot may lose before it is refused as suspect."""

    max_shrink: float = Field(
        default=DEFAULT_MAX_SHRINK, ge=0, le=1, description="Fraction of the previous snapshot a new one may lose"
    )


class AccountOptions(FixedConfig, ConfigurableResource):
    """The MAM account's safety margins, which the checks on mam_user_status hold it to."""

    ratio_warn_floor: float = Field(default=2.0, ge=0, description="A ratio below this warns")
    ratio_hard_floor: float = Field(
        default=1.2, ge=0, description="Below this ratio the ERROR check says new non-freeleech downloads should stop (MAM's own floor is 1.0)"
    )
    unsatisfied_headroom: int = Field(
        default=5, ge=0, description="Torrents kept free under the class's unsatisfied limit (one run's new downloads)"
    )
    vip_warn_days: float = Field(default=7.0, ge=0, description="Warn when VIP ends within this many days")


class RetentionOptions(FixedConfig, ConfigurableResource):
    """How many days each kind of record is kept (see mamcrawler.retention for why these
    figures). Values below 1 day fail the retention run before anything is deleted."""

    corrections_days: float = Field(default=30, description="Days metadata_corrections rows are kept")
    task_history_days: float = Field(default=30, description="Days the task history (task_runs) is kept")
    account_history_days: float = Field(
        default=365, description="Days mam_user_status_history is kept (one row per account read, for the charts)"
    )
    run_days: float = Field(default=90, description="Days Dagster keeps a finished run (its logs and events)")

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            corrections_days=self.corrections_days, task_history_days=self.task_history_days,
            account_history_days=self.account_history_days, run_days=self.run_days,
        )
