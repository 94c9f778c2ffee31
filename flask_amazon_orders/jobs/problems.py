"""How the jobs put an error into words for the store's admins.

The sync and the feed job store their last error on the store, and the store
dashboard shows it. An error that retrying will not cure (the seller's
authorization is gone, credentials are missing) needs a person, and the text
says what to do; every other error passes on its own, and the next run goes on
where this one stopped.
"""

from __future__ import annotations

from ..errors import AmazonOrdersError, MissingCredentialsError, RefreshTokenRevokedError


def needs_action(exc: BaseException) -> bool:
    """Whether only a person can cure ``exc`` (the next run would fail the same way)."""
    return isinstance(exc, RefreshTokenRevokedError | MissingCredentialsError)


def describe(exc: BaseException) -> str:
    """``exc`` in words for the dashboard (never an unexpected error's own text)."""
    if isinstance(exc, RefreshTokenRevokedError):
        return (
            "Amazon no longer accepts this store's authorization (the refresh token was "
            "revoked or has expired). Authorize the app again in Seller Central and update "
            f"the store's refresh token. Amazon said: {exc}"
        )
    if isinstance(exc, MissingCredentialsError):
        return f"Amazon credentials are missing: {exc}"
    if isinstance(exc, AmazonOrdersError):
        return str(exc)
    # Not ours: its text may carry SQL parameters (buyer data); keep it in the log only.
    return f"Unexpected {type(exc).__name__}; the application log has the details."
