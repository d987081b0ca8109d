"""Access tokens and the credentials' background refresh: a failure is logged (never with the token) and
tried again with the backoff, in both flavours; the JWT helpers."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from datetime import datetime, timedelta, timezone

import pytest

import chatnb
import chatnb._polling
import chatnb.aio
from chatnb._tokens import token_expiry, token_user_id
from tests.support.tokens import fake_jwt

RETRY_LOG = re.compile(
    r"background token refresh failed \((\w+): (.*)\); trying again in ([\d.]+) s \(failure 1\)"
)


def failed_refreshes(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    found = (RETRY_LOG.fullmatch(r.getMessage()) for r in caplog.records if r.name == "chatnb.credential")
    return [m for m in found if m]


def test_a_failing_background_refresh_is_logged_without_the_token_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatnb.credential")
    start = fake_jwt(seconds=2)  # within the refresh window: the first refresh comes after 1 s
    calls: list[int] = []
    refreshed = threading.Event()

    def refresh() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"the identity service refused {start}")
        refreshed.set()
        return fake_jwt(seconds=7200)

    with chatnb.CommunicationTokenCredential(
        start, token_refresher=refresh, proactive_refresh=True
    ) as credential:
        assert refreshed.wait(10)  # nobody called get_token: the background job tried again by itself
        assert credential.get_token().expires_on > datetime.now(timezone.utc) + timedelta(hours=1)
    assert len(calls) == 2
    (failure,) = failed_refreshes(caplog)
    assert failure[1] == "RuntimeError" and failure[2] == "the identity service refused <token>"
    assert 0.5 <= float(failure[3]) <= 1.0  # the first step of the refresh backoff, jittered
    warning = next(r for r in caplog.records if RETRY_LOG.fullmatch(r.getMessage()))
    assert warning.levelno == logging.WARNING
    assert all(start not in r.getMessage() for r in caplog.records)


async def test_the_async_credential_logs_and_retries_a_failing_background_refresh_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatnb.credential")
    start = fake_jwt(seconds=2)
    calls: list[int] = []
    refreshed = asyncio.Event()

    async def refresh() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise chatnb.TransportError("no response from POST https://acs.example.test/identities")
        refreshed.set()
        return fake_jwt(seconds=7200)

    async with chatnb.aio.CommunicationTokenCredential(
        start, token_refresher=refresh, proactive_refresh=True
    ) as credential:
        await asyncio.wait_for(refreshed.wait(), 10)
        assert (await credential.get_token()).expires_on > datetime.now(timezone.utc) + timedelta(hours=1)
    (failure,) = failed_refreshes(caplog)
    assert failure[1] == "TransportError" and 0.5 <= float(failure[3]) <= 1.0
    assert any("succeeded after 1 failed attempts" in r.getMessage() for r in caplog.records)
    assert all(start not in r.getMessage() for r in caplog.records)


def test_a_closed_credential_stops_its_background_job() -> None:
    calls: list[int] = []

    def refresh() -> str:
        calls.append(1)
        return fake_jwt(seconds=7200)

    before = set(threading.enumerate())
    credential = chatnb.CommunicationTokenCredential(
        fake_jwt(seconds=3600), token_refresher=refresh, proactive_refresh=True
    )
    (job,) = [t for t in threading.enumerate() if t not in before and t.name == "chatnb-token-refresh"]
    credential.close()
    job.join(5)
    assert not job.is_alive() and calls == []


def test_the_jwt_helpers() -> None:
    token = fake_jwt(seconds=60, skypeid="acs:r_u")
    assert token_user_id(token) == "8:acs:r_u"
    assert token_user_id(fake_jwt(seconds=60, skypeid="8:acs:r_u")) == "8:acs:r_u"
    assert abs(token_expiry(token) - (datetime.now(timezone.utc) + timedelta(seconds=60))) < timedelta(
        seconds=5
    )
    assert chatnb.credential.token_expiry is token_expiry  # still where it was
    assert chatnb.credential.token_user_id is token_user_id
    assert not hasattr(chatnb._polling, "user_of_token")  # one JWT decoder: no second name for it
    for bad in ("secret-value", "secret-value.e30.sig", "a.!!!.b", fake_jwt(seconds=60, skypeid="")):
        with pytest.raises(ValueError, match="names no ACS user") as info:
            token_user_id(bad)
        assert "secret-value" not in str(info.value)
    with pytest.raises(ValueError, match="'exp'"):
        token_expiry("secret-value.e30.sig")
