"""A circuit breaker: after repeated failures of a dependency, stop calling it for a while."""

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed until ``failures`` consecutive failures, then open for ``cooldown_s``; after the cool-down one
    trial call goes through (half-open): success closes the circuit, failure opens it for another cool-down.

    Args:
        failures: consecutive failures that open the circuit.
        cooldown_s: seconds the circuit stays open.
        clock: monotonic seconds; tests pass a fake one.
    """

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError(f"need failures >= 1 and cooldown_s > 0; got {failures} and {cooldown_s}")
        self.failures, self.cooldown_s, self._clock = failures, cooldown_s, clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False
        # Requests run on several threads of the server's pool.
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Whether calls are refused now (a trial after the cool-down is not refused)."""
        with self._lock:
            return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown_s

    def retry_in(self) -> float:
        """Seconds until the next trial call is allowed (0 when the circuit is closed)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether to make the call now; after the cool-down only one trial at a time is let through."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self.cooldown_s or self._trial_running:
                return False
            self._trial_running = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._consecutive, self._opened_at, self._trial_running = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._trial_running or self._consecutive >= self.failures:
                self._opened_at = self._clock()
            self._trial_running = False
