"""Evaluation speed on a suite's frozen test episodes, per model and protocol, and whether memory
stays flat while it runs.

Each model (untrained: the weights do not change the work done) is evaluated with
``fewshot_mem.evaluate`` on the first ``--episodes`` frozen test episodes of every table of the
suite (default omniglot-5way: the online table and the 5-way 1-shot and 5-shot episodic tables), as
the bench does, after the novelty calibration that learners with a novelty score get first. It
prints seconds and episodes/s per table (so the time for all 1,000 test episodes follows) and the
process's peak resident memory (``resource.getrusage``) once a quarter of the table's episodes is
done and at its end: memory that stays flat shows no growth between the two.

MAML's online evaluation adapts afresh on every prefix of every episode and is slow on a CPU:
pick models with ``--models`` and fewer episodes with ``--episodes``.

    python benchmarks/bench_eval.py [--suite omniglot-5way] [--models mann,ntm,dnc,lstm,protonet,maml]
        [--episodes 1000] [--threads 2] [--tables online,5-way-1-shot,5-way-5-shot] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch

from fewshot_mem.budgets import recipe
from fewshot_mem.errors import FewshotMemError
from fewshot_mem.evaluate import calibration_batches, evaluate_episodic, evaluate_online
from fewshot_mem.models.registry import create, default_models
from fewshot_mem.suites import get_suite, load_pools


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class WatchedSampler:
    """A sampler that notes the peak RSS when the evaluation asks for the batch that starts at or
    past a quarter of the episodes (so the first quarter has been evaluated by then)."""

    def __init__(self, sampler, episodes: int) -> None:
        self._sampler, self._quarter = sampler, episodes / 4
        self.at_quarter: tuple[int, float] | None = None  # (episodes done, peak RSS in MiB)

    def batch(self, ids):
        done = int(np.asarray(ids)[0])
        if self.at_quarter is None and done >= self._quarter:
            self.at_quarter = (done, peak_rss_mib())
        return self._sampler.batch(ids)

    def __getattr__(self, name):
        return getattr(self._sampler, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="omniglot-5way")
    parser.add_argument("--models", default=",".join(default_models()))
    parser.add_argument("--episodes", type=int, default=None, help="test episodes per table (default: the suite's)")
    parser.add_argument("--tables", default=None, help="comma-separated tables (default: all of the suite's)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target machine has 2 cores)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        suite = get_suite(args.suite)
        pools = load_pools(suite, args.data_root, progress=False, download=False)
    except FewshotMemError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    episodes = args.episodes or suite.test_episodes
    samplers = suite.test_samplers(pools["test"])
    if args.tables:
        wanted = [t.strip() for t in args.tables.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in samplers]
        if unknown:
            parser.error(f"unknown table(s) {', '.join(unknown)}; {suite.id} has {', '.join(samplers)}")
        samplers = {t: samplers[t] for t in wanted}
    print(f"{suite.id}: first {episodes} of {suite.test_episodes} frozen test episodes per table, untrained models, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; peak RSS at start {peak_rss_mib():,.0f} MiB")
    rows = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        torch.manual_seed(0)
        learner = create(model, suite.task(), **recipe(model, suite, "quick").hyperparameters)
        start = time.perf_counter()
        learner.calibrate(calibration_batches(suite, pools["train"]))  # as evaluate_on_suite does
        print(f"[{model}] calibration: {time.perf_counter() - start:.1f} s")
        for table, sampler in samplers.items():
            watched = WatchedSampler(sampler, episodes)
            evaluate = evaluate_online if table == "online" else evaluate_episodic
            start = time.perf_counter()
            evaluate(learner, watched, episodes)
            seconds = time.perf_counter() - start
            quarter = watched.at_quarter or (episodes, peak_rss_mib())
            rows.append((model, table, episodes, seconds, quarter, peak_rss_mib()))
            print(f"[{model}] {table}: {episodes} episodes in {seconds:.1f} s ({episodes / seconds:,.1f} episodes/s); "
                  f"peak RSS {quarter[1]:,.0f} MiB after {quarter[0]} episodes, {rows[-1][-1]:,.0f} MiB at the end",
                  flush=True)

    full = suite.test_episodes
    print(f"\n{'model':<10}{'table':<15}{'episodes':>9}{'seconds':>9}{'episodes/s':>12}{f'{full:,} eps (s)':>14}"
          f"{'peak RSS @1/4':>15}{'@end':>8}{'growth':>8}")
    for model, table, count, seconds, (done, quarter_rss), end_rss in rows:
        print(f"{model:<10}{table:<15}{count:>9}{seconds:>9.1f}{count / seconds:>12,.1f}{full * seconds / count:>14,.0f}"
              f"{quarter_rss:>11,.0f} MiB{end_rss:>8,.0f}{end_rss - quarter_rss:>8,.0f}")
    print(f"\npeak RSS: the process's high-water mark (MiB) once the batch holding episode ≥ {episodes}/4 is asked "
          "for, and after the table; growth = the difference (0 = flat). High-water marks carry over from earlier "
          "rows, so only growth within a row speaks for that row.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
