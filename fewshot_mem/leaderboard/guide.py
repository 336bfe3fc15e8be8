"""The words around the rendered board: how to read it, and how an outsider gets an entry onto
it (train, submit with weights, open a change) and how CI checks that entry."""

INTRO = """Every number here can be re-measured. An entry holds the per-episode accuracies on the suite's
frozen test episodes (named by the fingerprint) and the weights, with their sha256, under
`checkpoints/`. **verified** means `python -m fewshot_mem.leaderboard verify --record` re-evaluated
those weights and got the entry's per-episode values back (on the date and at the commit shown);
its record holds the sha256 of the results and weights, so any later change to them removes the
mark. Rows marked *paper* quote the papers' own figures: they are not verified and not ranked.

Ranks follow Meta-Dataset: in each column, methods whose 95% confidence intervals do not
separate share a rank; rows are ordered by their average rank. The best rank of a column is in
bold. Training is given as its budget in optimizer steps × batch = episodes (an online episode
is one sequence); time and hardware are those of the run that trained the weights."""

HOW_TO_SUBMIT = """## How to submit an entry

From a clone of the repository, with the data set up (`make test` does it; see the main README):

1. **Train** with the bench, on the suite's full frozen test episodes (never `--test-episodes`,
   whose results are refused). A model of your own is a plug-in learner: see
   `examples/my_model/`, and pass it as `--models package.module:Class`.

   ```bash
   python -m fewshot_mem.bench --suite omniglot-5way --models mann --budget paper
   ```

   This writes `runs/omniglot-5way@1/results/mann-paper-seed0.json` (every table's per-episode
   accuracies, the training record, time and hardware) and the weights,
   `runs/omniglot-5way@1/mann/paper-seed0/best.pt`.

2. **Submit** the result with its weights, under a new entry name and your own name:

   ```bash
   python -m fewshot_mem.leaderboard submit runs/omniglot-5way@1/results/mann-paper-seed0.json \\
       --name my-mann --submitter "Your Name" [--paper URL] [--code URL]
   ```

   It checks the result (suite, fingerprint, per-episode values, estimates) and that the weights
   fit the model, then writes `entries/omniglot-5way@1/my-mann.json` and the weights as a
   weights-only state dict, `checkpoints/omniglot-5way@1/my-mann.pt`. It writes
   nothing if a check fails, and never replaces an entry without `--force`.

3. **Check it** on your machine, and record the verification:

   ```bash
   python -m fewshot_mem.leaderboard validate
   python -m fewshot_mem.leaderboard verify omniglot-5way@1/my-mann --exact --record
   python -m fewshot_mem.leaderboard render
   ```

   On the machine that trained it, re-evaluation on the CPU is bit-identical (`--exact`).
   `--record` writes the commit, date and hardware into the entry; `render` rewrites this page.

4. **Open a change** (a pull request) with the entry, its weights and the re-rendered board:

   ```bash
   git checkout -b leaderboard/my-mann
   git add leaderboard/entries/omniglot-5way@1/my-mann.json \\
           leaderboard/checkpoints/omniglot-5way@1/my-mann.pt leaderboard/README.md leaderboard/index.html
   git commit -m "Leaderboard: my-mann on omniglot-5way@1" && git push
   ```

   A plug-in model's code must be in the change too (as `examples/my_model/` is), or CI cannot
   build it.

## How CI checks a change

`.ci/run` validates every entry, then re-evaluates every entry that the change adds or modifies
(`verify --changed`: the entry files and weights that differ from the merge base with the main
branch, `$LEADERBOARD_BASE` or `origin/main`; every entry when git cannot tell). It runs on
another machine than yours, so it allows the documented tolerance for float rounding: at most
0.5% of a table's episodes may differ, by one prediction each. Any other difference fails the
change. A changed entry whose weights are not in the change fails if it claims a verification,
and otherwise stays unverified. A named base that git does not know is an error (a shallow clone
may lack it). A re-evaluation takes about as long as the bench's evaluation of the entry
(`eval_seconds` in its result) plus loading the data: on the project's 2-core machine, 5 to 10 s
for the plug-in example's entry (`time python -m fewshot_mem.leaderboard verify ...`), 1 s (an
LSTM) to 23 minutes (MAML's online table, which re-adapts on every prefix) of evaluation for the
committed entries.

What this protects: a change cannot put numbers on the board, or a *verified* mark beside them,
that its own weights do not reproduce, since CI re-measures everything the change touches
rather than trusting the entry or its record. What it does not: entries the change leaves alone
are trusted as the main branch holds them, so a change to the evaluation code itself needs
`verify --all` and review like any other code change; and CI runs the change's own code, so a
change to `fewshot_mem/` or `.ci/` is reviewed as code, not as an entry."""
