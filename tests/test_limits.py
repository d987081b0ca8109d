"""The emulator's opt-in switches: the documented rate limits and fault injection (issue 7, item 3).

Everything goes over real HTTPS to a running emulator. Rate-limit windows are stepped with an injected
clock, so no test waits for a window to pass.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from chatnb.cli import _fault_plan, _parser
from chatnb.emulator import Emulator, FaultPlan, RateLimiter
from tests.support.wire import User, Wire, assert_error, q


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limited(clock: FakeClock) -> Iterator[Wire]:
    """A wire to an emulator that enforces the documented limits, on ``clock``."""
    limiter = RateLimiter(clock=clock, limits={"create-identity": ("resource", ((8, 30.0),))})
    with Emulator(rate_limits=limiter) as emu, Wire(emu) as wire:
        yield wire


def _send(wire: Wire, thread_id: str, user: User, text: str) -> int:
    response = wire.chat("POST", f"/chat/threads/{q(thread_id)}/messages", user, {"content": text})
    return response.status_code


def _assert_throttled(response: httpx.Response, *, at_most: float) -> float:
    """Assert a 429 with the ACS body and a Retry-After in (0, at_most]; return it in seconds."""
    error = assert_error(response, 429, code="TooManyRequests")
    assert "rate limit" in error["message"].lower()
    headers = response.headers
    retry_after = int(headers["retry-after"])
    retry_ms = int(headers["retry-after-ms"])
    assert 0 < retry_after <= at_most, headers
    assert retry_after * 1000 - 1000 < retry_ms <= retry_after * 1000
    return retry_ms / 1000


# -- rate limits -------------------------------------------------------------------------------


def test_switches_are_off_by_default(fresh_emulator: Emulator) -> None:
    assert fresh_emulator.rate_limiter is None and fresh_emulator.fault_injector is None
    with Wire(fresh_emulator) as wire:
        alice = wire.new_user()
        thread = wire.create_thread(alice)
        assert [_send(wire, thread, alice, f"m{i}") for i in range(15)] == [201] * 15


def test_eleventh_send_within_10s_on_one_thread_is_429_and_not_stored(
    limited: Wire, clock: FakeClock
) -> None:
    alice, bob = limited.new_user(), limited.new_user()
    thread = limited.create_thread(alice, "busy", bob)
    other = limited.create_thread(alice, "quiet", bob)
    # The limit is per thread: two senders share it.
    statuses = [_send(limited, thread, alice if i % 2 else bob, f"m{i}") for i in range(10)]
    assert statuses == [201] * 10
    response = limited.chat("POST", f"/chat/threads/{q(thread)}/messages", alice, {"content": "eleventh"})
    retry = _assert_throttled(response, at_most=10)
    contents = [m["content"]["message"] for m in limited.all_messages(thread, alice) if m["type"] == "text"]
    assert "eleventh" not in contents and len(contents) == 10
    # Editing and deleting messages spend the same budget; another thread has its own.
    first = limited.all_messages(thread, alice)[-3]["id"]
    path = f"/chat/threads/{q(thread)}/messages/{first}"
    assert limited.chat("PATCH", path, bob, {"content": "x"}).status_code == 429
    assert _send(limited, other, alice, "elsewhere") == 201
    # Once the Retry-After interval has passed, the thread accepts messages again.
    clock.advance(retry)
    assert _send(limited, thread, alice, "later") == 201


def test_the_one_minute_window_holds_30_sends_per_thread(limited: Wire, clock: FakeClock) -> None:
    alice = limited.new_user()
    thread = limited.create_thread(alice)
    for batch in range(3):
        assert [_send(limited, thread, alice, f"{batch}-{i}") for i in range(10)] == [201] * 10
        clock.advance(10)
    # 30 sends in the last 30 s: the 10 s window is clear but the minute is full until the first batch
    # leaves it, 30 s from now.
    response = limited.chat("POST", f"/chat/threads/{q(thread)}/messages", alice, {"content": "31st"})
    retry = _assert_throttled(response, at_most=30)
    assert retry == pytest.approx(30, abs=0.01)
    clock.advance(29)
    assert _send(limited, thread, alice, "too early") == 429
    clock.advance(1.01)
    assert _send(limited, thread, alice, "31st") == 201


def test_list_messages_is_counted_per_user_and_thread(limited: Wire, clock: FakeClock) -> None:
    alice, bob = limited.new_user(), limited.new_user()
    thread = limited.create_thread(alice, "t", bob)
    path = f"/chat/threads/{q(thread)}/messages"
    assert [limited.chat("GET", path, alice).status_code for _ in range(50)] == [200] * 50
    _assert_throttled(limited.chat("GET", path, alice), at_most=10)
    # Bob on the same thread, and Alice on another thread, have budgets of their own.
    assert limited.chat("GET", path, bob).status_code == 200
    other = limited.create_thread(alice)
    assert limited.chat("GET", f"/chat/threads/{q(other)}/messages", alice).status_code == 200
    clock.advance(10)
    assert limited.chat("GET", path, alice).status_code == 200


def test_thread_creation_is_counted_per_user(limited: Wire, clock: FakeClock) -> None:
    alice, bob = limited.new_user(), limited.new_user()
    body = {"topic": "t", "participants": []}
    assert [limited.chat("POST", "/chat/threads", alice, body).status_code for _ in range(10)] == [201] * 10
    _assert_throttled(limited.chat("POST", "/chat/threads", alice, body), at_most=10)
    assert limited.chat("POST", "/chat/threads", bob, body).status_code == 201
    # A refused creation created nothing: Alice is in exactly 10 threads.
    listed = limited.chat("GET", "/chat/threads", alice, params={"maxPageSize": 50}).json()["value"]
    assert len(listed) == 10


def test_requests_without_a_valid_token_are_neither_throttled_nor_counted(
    limited: Wire, clock: FakeClock
) -> None:
    alice = limited.new_user()
    thread = limited.create_thread(alice)
    path = f"/chat/threads/{q(thread)}/messages"
    for _ in range(12):
        assert_error(limited.chat("POST", path, "not-a-token", {"content": "x"}), 401)
    assert [_send(limited, thread, alice, f"m{i}") for i in range(10)] == [201] * 10


def test_identity_calls_are_counted_per_resource(limited: Wire, clock: FakeClock) -> None:
    statuses = [limited.create_user().status_code for _ in range(8)]
    assert statuses == [201] * 8
    _assert_throttled(limited.create_user(), at_most=30)
    clock.advance(30)
    assert limited.create_user().status_code == 201


# -- fault injection ---------------------------------------------------------------------------


def _fault_run(plan: FaultPlan, n: int) -> tuple[list[int], Emulator]:
    """Statuses of ``n`` list-threads calls against an emulator injecting ``plan``."""
    emu = Emulator(faults=plan)
    emu.start()
    try:
        with Wire(emu) as wire:
            user = _user_despite_faults(wire)
            seen_before = emu.fault_injector.seen if emu.fault_injector else 0
            statuses = []
            for _ in range(n):
                response = wire.chat("GET", "/chat/threads", user)
                statuses.append(response.status_code)
                if response.status_code in (429, 503):
                    error = assert_error(response, response.status_code)
                    assert "injected fault" in error["message"].lower()
                    assert 0 <= int(response.headers["retry-after"]) <= 1
                    assert 0 <= int(response.headers["retry-after-ms"]) <= 1000
                else:
                    assert response.status_code == 200, response.text
            assert emu.fault_injector is not None
            assert emu.fault_injector.seen - seen_before == n
    finally:
        emu.stop()
    return statuses, emu


def _user_despite_faults(wire: Wire) -> User:
    for _ in range(50):
        response = wire.create_user(["chat"])
        if response.status_code == 201:
            body = response.json()
            return User(body["identity"]["id"], body["accessToken"]["token"])
        assert response.status_code in (429, 503), response.text
    raise AssertionError("could not create a user through the injected faults")


def test_fault_share_is_close_to_the_rate_and_replays_with_the_seed() -> None:
    plan = FaultPlan(rate=0.2, statuses=(429, 503), seed=1234)
    statuses, emu = _fault_run(plan, 400)
    counts = Counter(statuses)
    faulted = counts[429] + counts[503]
    assert 0.15 <= faulted / 400 <= 0.25, counts
    assert counts[429] > 0 and counts[503] > 0
    assert emu.fault_injector is not None
    assert sum(emu.fault_injector.injected.values()) >= faulted
    # The same seed and the same request order give the same faults.
    again, _ = _fault_run(plan, 400)
    assert again == statuses


def test_a_faulted_write_did_not_happen() -> None:
    with Emulator(faults=FaultPlan(rate=0.4, seed=99)) as emu, Wire(emu) as wire:
        alice = _user_despite_faults(wire)
        thread = None
        while thread is None:
            response = wire.chat("POST", "/chat/threads", alice, {"topic": "faults", "participants": []})
            if response.status_code == 201:
                thread = response.json()["chatThread"]["id"]
        acked: list[str] = []
        refused: list[str] = []
        for i in range(80):
            text = f"message {i}"
            status = _send(wire, thread, alice, text)
            assert status in (201, 429, 503)
            (acked if status == 201 else refused).append(text)
        assert refused and acked
        stored = _all_texts_despite_faults(wire, thread, alice)
        assert sorted(stored) == sorted(acked)


def _all_texts_despite_faults(wire: Wire, thread: str, user: User) -> list[str]:
    for _ in range(50):
        try:
            return [m["content"]["message"] for m in wire.all_messages(thread, user) if m["type"] == "text"]
        except AssertionError:
            continue  # a page answered with an injected fault: list again
    raise AssertionError("could not list the messages through the injected faults")


def test_delays_are_served_after_waiting() -> None:
    plan = FaultPlan(rate=1.0, statuses=(), delay=0.2, seed=1)
    with Emulator(faults=plan) as emu, Wire(emu) as wire:
        started = time.monotonic()
        response = wire.create_user(["chat"])
        elapsed = time.monotonic() - started
        assert response.status_code == 201
        assert elapsed >= 0.19
        assert emu.fault_injector is not None and emu.fault_injector.injected == Counter({"delay": 1})


def test_faults_hit_the_api_and_event_stream_only() -> None:
    with Emulator(faults=FaultPlan(rate=1.0, statuses=(503,), retry_after=0.0)) as emu, Wire(emu) as wire:
        for path in ("/chat/threads", "/chatnb/events"):
            response = wire.chat("GET", path, "whatever")
            assert_error(response, 503, "injected", code="ServiceUnavailable")
            assert response.headers["retry-after"] == "0"
        assert wire.create_user().status_code == 503
        assert_error(wire.chat("GET", "/not/an/api", None), 404)


def test_fault_plans_are_checked() -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(rate=1.5)
    with pytest.raises(ValueError, match="statuses"):
        FaultPlan(statuses=(500,))
    with pytest.raises(ValueError, match="statuses or a delay"):
        FaultPlan(statuses=())
    with pytest.raises(ValueError, match="negative"):
        FaultPlan(delay=-1)


# -- the command line --------------------------------------------------------------------------


def test_serve_options_build_the_fault_plan() -> None:
    args = _parser().parse_args(
        [
            "serve",
            "--faults",
            "0.25",
            "--fault-statuses",
            "503",
            "--fault-delay-ms",
            "150",
            "--fault-seed",
            "7",
        ]
    )
    assert _fault_plan(args) == FaultPlan(rate=0.25, statuses=(503,), delay=0.15, retry_after=1.0, seed=7)
    assert _fault_plan(_parser().parse_args(["serve"])) is None
    assert _parser().parse_args(["serve", "--rate-limits"]).rate_limits is True
    with pytest.raises(ValueError, match="fault-statuses"):
        _fault_plan(_parser().parse_args(["serve", "--faults", "0.1", "--fault-statuses", "x"]))


def test_chatnb_serve_injects_faults_and_announces_the_switches() -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "chatnb", "serve", "--in-memory", "--port", "0",
            "--rate-limits", "--faults", "1", "--fault-statuses", "503", "--fault-seed", "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if "press Ctrl-C" in line:
                break
        text = "".join(banner)
        assert "rate limits:        on" in text
        assert "fault injection:    100% of requests (statuses 503" in text
        conn = next(line for line in banner if "connection string" in line).split(":", 1)[1].split()[0]
        endpoint = conn.split(";")[0].removeprefix("endpoint=")  # the key is not shown: no terminal
        ca = next(line for line in banner if "certificate" in line).split()[2]
        with httpx.Client(verify=ssl.create_default_context(cafile=ca)) as http:
            response = http.get(endpoint + "chat/threads?api-version=2024-03-07")
        assert_error(response, 503, "injected")
    finally:
        proc.terminate()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
