"""Server settings: limits and knobs, validated when the app is built."""

from __future__ import annotations

from dataclasses import dataclass, field

from serac.errors import ConfigError
from serac.server.auth import KeyRing


@dataclass
class ServerSettings:
    """Everything ``create_app`` needs besides the editor. Every field has a safe default."""

    model_name: str = "serac"  # the id reported in responses and by GET /v1/models
    keys: KeyRing = field(default_factory=KeyRing)  # empty: no auth (the CLI then binds loopback only)
    max_body_bytes: int = 1_048_576  # larger request bodies get 413 before they are read whole
    max_tokens_limit: int = 512  # the largest max_tokens a request may ask for
    max_prompts_per_request: int = 16  # /v1/completions with a list of prompts
    max_edits_per_request: int = 10_000  # POST /v1/edits with {"edits": [...]}
    max_page_size: int = 1000  # GET /v1/edits?limit=
    max_batch_size: int = 16  # requests the micro-batcher sends to the router at once
    batch_wait_ms: float = 5.0  # how long the batcher waits for more requests after the first
    min_free_disk_mb: int = 64  # /healthz is not ready when the store's disk has less free
    max_prompt_tokens: int = 2048  # longer prompts get 400 (below the model's context: bounds prefill time)
    max_streams: int = 4  # SSE responses generating at once; more get 503 + Retry-After
    max_queued_requests: int = 64  # prompts queued or running in the micro-batcher; more get 503
    max_pending_writes: int = 8  # edit writes running or waiting for the store; more get 503
    request_timeout_s: float = 120.0  # a generation running longer is stopped (504, or an SSE error event)

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_tokens_limit",
            "max_prompts_per_request",
            "max_edits_per_request",
            "max_page_size",
            "max_batch_size",
            "max_prompt_tokens",
            "max_streams",
            "max_queued_requests",
            "max_pending_writes",
            "min_free_disk_mb",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"server setting {name} must be a positive integer, got {value!r}")
        if not isinstance(self.batch_wait_ms, (int, float)) or not 0 <= self.batch_wait_ms <= 1000:
            raise ConfigError(
                f"server setting batch_wait_ms must be in [0, 1000] ms, got {self.batch_wait_ms!r}"
            )
        if (
            isinstance(self.request_timeout_s, bool)
            or not isinstance(self.request_timeout_s, (int, float))
            or not (0 < self.request_timeout_s <= 86_400)
        ):
            raise ConfigError(
                "server setting request_timeout_s must be in (0, 86400] seconds, got "
                f"{self.request_timeout_s!r}"
            )
        if not isinstance(self.keys, KeyRing):
            raise ConfigError(f"server setting keys must be a KeyRing, got {type(self.keys).__name__}")
