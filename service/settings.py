"""The web service's settings: the library's (reid.settings.Settings) plus what only a server
needs (address, keys, request budgets, concurrency), read from REID_* variables too.

`reid serve` builds one and hands it to `create_app`; `uvicorn service.app:create_app
--factory` reads it from the environment. Every field is documented in docs/settings.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from reid.settings import Settings


class ServerSettings(Settings):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # A single admin key for scripts ('Authorization: Bearer <token>'); `reid keys add` makes
    # named keys with roles. When either exists, every route that holds data needs a key.
    api_token: str | None = None
    # The lowest role that sees coordinates, exact station positions, source paths and GPS EXIF
    # (viewer, reviewer or admin): one rule for JSON, pages, reports, exports and image files.
    location_role: str = "reviewer"
    # Host names the service answers to (REID_ALLOWED_HOSTS, comma separated, e.g.
    # "reid.example.org,192.168.1.20:8000"); loopback names are always allowed. Any other Host
    # header is refused: a DNS-rebinding page cannot read a laptop's service.
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    # Bytes one uploaded file may have; larger request bodies are refused while they stream in.
    max_upload_bytes: int = Field(40 * 1024 * 1024, gt=0)
    # Decoded pixels one request may cost, summed over all its images (JPEGs are decoded at a
    # reduced size where the pipeline does not need more), and what all requests in flight
    # together may hold before new ones get 503 + Retry-After instead of the machine swapping.
    max_request_pixels: int = Field(150_000_000, gt=0)
    max_inflight_pixels: int = Field(400_000_000, gt=0)
    # How long a request waits for others' pixels to come back to that pool before its 503.
    pixel_wait_s: float = Field(10.0, gt=0.0)
    # Model calls (embedding, keypoints) run in parallel at most this many at a time; more
    # requests wait their turn (service/deps.run_model).
    model_concurrency: int = Field(2, ge=1)
    # Requests that may wait for a model slot; more get 503 + Retry-After. Each waiting request
    # holds its upload (<= max_upload_bytes) in memory, so the queue must not grow unbounded.
    max_waiting_requests: int = Field(16, ge=1)

    @field_validator("location_role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in ("viewer", "reviewer", "admin"):
            raise ValueError(f"must be viewer, reviewer or admin, not {v!r}")
        return v

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, v: object) -> object:
        # the environment gives "a.example.org, 192.168.1.20:8000" (comma separated, not JSON)
        if isinstance(v, str):
            return tuple(h.strip().lower() for h in v.split(",") if h.strip())
        return v

    @classmethod
    def serving(cls, settings: Settings) -> ServerSettings:
        """These library settings, with the server's own part from the environment."""
        if isinstance(settings, ServerSettings):
            return settings
        return cls(**settings.model_dump())
