"""Settings from the environment (prefix `JOURNEYMAN_`) or a `.env` file.

With no `JOURNEYMAN_DATABASE_URL`, the embedded PostgreSQL under the data directory is used;
with no `JOURNEYMAN_TEMPORAL_ADDRESS`, the embedded Temporal dev server is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOURNEYMAN_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL of the database; empty means the embedded PostgreSQL.",
    )
    temporal_address: str | None = Field(
        default=None, description="host:port of Temporal; empty means the embedded dev server."
    )
    temporal_namespace: str = "default"
    task_queue: str = "journeyman"
    data_dir: Path = Field(default=Path(".journeyman"), description="Where embedded state lives.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret for blind indexes, signed links and key encryption. "
        "When unset, one is generated once and kept in the data directory.",
    )
    db_pool_min: int = 2
    db_pool_max: int = 10

    def resolved_secret(self) -> bytes:
        """The server secret: configured, or generated once into `<data_dir>/secret.key`."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        import secrets

        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
