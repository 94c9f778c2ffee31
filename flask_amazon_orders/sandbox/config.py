"""The sandbox's settings, read once from the dictionary given to ``create_app``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one sandbox instance. Every key is optional.

    :param time_scale: multiplies every published rate limit (bursts stay as
        published) and divides the feed processing time.
    :param enforce_rate_limits: answer 429 when a usage plan is exceeded.
    :param search_lag: seconds; without an explicit ``...Before`` the search window
        ends this long before now.
    :param before_min_age: seconds an explicit ``createdBefore``/``lastUpdatedBefore``
        must lie before now (Amazon: two minutes).
    :param client_id: the LWA client id the token endpoint accepts.
    :param client_secret: the LWA client secret the token endpoint accepts.
    :param access_token_ttl: lifetime of access tokens, seconds.
    :param pagination_token_ttl: lifetime of searchOrders pagination tokens, seconds.
    :param feed_processing_seconds: how long a feed takes from IN_QUEUE to DONE
        (divided by ``time_scale``).
    :param presigned_url_ttl: lifetime of presigned upload/download URLs, seconds.
    :param static_examples: serve the model's static sandbox cases on exact matches.
    :param seed: seed of the order generator.
    :param sqs_endpoint_url: the SQS endpoint ORDER_CHANGE notifications are sent
        to (a local SQS-compatible server); without it the sandbox accepts no SQS
        destination. Sending needs ``boto3``.
    """

    time_scale: float = 1.0
    enforce_rate_limits: bool = True
    search_lag: float = 0.0
    before_min_age: float = 120.0
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    access_token_ttl: float = 3600
    pagination_token_ttl: float = 86400
    feed_processing_seconds: float = 2.0
    presigned_url_ttl: float = 300
    static_examples: bool = True
    seed: int = 0
    sqs_endpoint_url: str | None = None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> SandboxConfig:
        """Build the settings from a plain dictionary.

        :raises ValueError: for an unknown key or a value of the wrong type.
        """
        config = dict(config or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(
                f"unknown sandbox config key(s): {', '.join(unknown)}; "
                f"known keys: {', '.join(known)}"
            )
        values: dict[str, Any] = {}
        for name, value in config.items():
            default = getattr(cls, name)
            if value is None and default is None:
                continue
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"sandbox config {name!r} must be true or false")
            elif isinstance(default, int | float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"sandbox config {name!r} must be a number")
                if value < 0 or (name == "time_scale" and value <= 0):
                    raise ValueError(f"sandbox config {name!r} must be positive")
                if isinstance(default, int) and not isinstance(default, bool) and name == "seed":
                    value = int(value)
            elif not isinstance(value, str) or not value:
                raise ValueError(f"sandbox config {name!r} must be a non-empty string")
            values[name] = value
        return cls(**values)
