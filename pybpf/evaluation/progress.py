"""Progress on stderr while the evaluation runs: experiment i of n, point j of k,
and an estimate of the time left.

The estimate weighs each remaining point by the cost its experiment predicted for
it (a grid point of 112 MB costs more than one of 16 MB) and scales the predictions
by how fast this machine has been so far, so it improves as the run goes.
"""
import sys
import time


def _clock(seconds):
    seconds = int(max(0, seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """plan: [(experiment title, [predicted cost of each point])]."""

    def __init__(self, plan, stream=None, quiet=False):
        self.plan = plan
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self.done_cost = 0.0
        self.total_cost = sum(sum(costs) for _, costs in plan) or 1.0
        self.experiment = -1
        self.point = 0

    def begin(self, index):
        self.experiment, self.point = index, 0
        title, costs = self.plan[index]
        self._say(f"[{index + 1}/{len(self.plan)}] {title}: {len(costs)} points")

    def step(self, what=""):
        """One point of the current experiment is done."""
        costs = self.plan[self.experiment][1]
        if self.point < len(costs):
            self.done_cost += costs[self.point]
        self.point += 1
        title = self.plan[self.experiment][0]
        self._say(f"[{self.experiment + 1}/{len(self.plan)}] {title}: point "
                  f"{self.point}/{len(costs)} {what} - {_clock(self.elapsed())} elapsed, "
                  f"ETA {_clock(self.eta())}")

    def skip(self):
        """The current experiment's remaining points will not run."""
        costs = self.plan[self.experiment][1]
        self.done_cost += sum(costs[self.point:])
        self.point = len(costs)

    def elapsed(self):
        return time.monotonic() - self.started

    def eta(self):
        """Seconds left, from the rate of predicted cost done so far."""
        if self.done_cost <= 0:
            return self.total_cost
        return self.elapsed() / self.done_cost * (self.total_cost - self.done_cost)

    def _say(self, text):
        if not self.quiet:
            print(text, file=self.stream, flush=True)
