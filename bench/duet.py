"""Benchmark: what running at once costs two engines on this 2-core machine, with nothing else busy.

    python -m bench.duet [--rounds 120] [--events 1000]

Two child processes each run `bench.inprocess`'s engine (the bench's sensor on a memory bus, its HTTP sink in the
same loop, tracing off: `bench.tracepair`'s children). Each round runs one burst of --events in each child alone
(the other idle) and one in both children at the same moment (one per core), in an order that alternates, and
compares each child's CPU per event at once against alone. It prints the median of the per-burst ratios, with
the quartiles, the ratio of the medians and of the sums.

Why: `bench.workers` finds two `sensorium run` processes on JetStream spending about 6% more CPU per event than
one, with the same instructions per event (callgrind). There the engines share the two cores with nats-server and
the sink. Here nothing else runs, no bus server and no sink process: whatever two engines busy at once cost each
other on this machine (shared caches, memory, the host) shows alone. The processes' CPU is read by each child
itself (`time.process_time`), to the nanosecond.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from bench.tracepair import _read, _send, children


def run(rounds: int, events: int) -> None:
    alone: list[float] = []
    together: list[float] = []
    ratios: list[float] = []
    with children() as kids:

        def burst(which: Sequence[int]) -> list[float]:
            for i in which:
                _send(kids[i].stdin, f"off {events}")
            return [float(_read(kids[i].stdout)) for i in which]

        for r in range(rounds):
            first = r % 4 < 2  # both at once before the lone bursts in half the rounds, after them in the others
            both = burst((0, 1)) if first else []
            lone = {i: burst((i,))[0] for i in ((0, 1) if r % 2 == 0 else (1, 0))}
            if not first:
                both = burst((0, 1))
            for i in (0, 1):
                alone.append(lone[i])
                together.append(both[i])
                ratios.append(both[i] / lone[i])
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    at_once, lone_median = statistics.median(together), statistics.median(alone)
    print(f"bench.duet: {rounds} rounds of {events}-event bursts, each child alone and both at once")
    print(f"  at once against alone, CPU per event: median of the bursts' ratios x{statistics.median(ratios):.3f} "
          f"(quartiles x{q1:.3f} .. x{q3:.3f}); ratio of the medians x{at_once / lone_median:.3f} ({at_once:.1f} "
          f"against {lone_median:.1f} us per event, engine and its in-process sink); summed "
          f"x{sum(together) / sum(alone):.3f}")


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=120, help="rounds (default 120)")
    parser.add_argument("--events", type=int, default=1000, help="events per burst (default 1000)")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.events < 1:
        parser.error("--rounds must be at least 2 and --events positive")
    run(args.rounds, args.events)


if __name__ == "__main__":
    cli()
