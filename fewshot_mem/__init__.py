"""fewshot-mem: one benchmark for memory-augmented, gradient and metric few-shot learners.

From Python (README, "Use it from Python")::

    suite = fewshot_mem.get_suite("omniglot-5way-1shot@2")
    for batch in suite.train_episodes(batch_size=32, batches=100): ...   # your own training loop
    results = fewshot_mem.evaluate(fewshot_mem.Prototypes(network=my_net), suite)
    print(results); results.save("runs/my_net.json")   # then: fewshot-mem-leaderboard submit ...

``fewshot_mem.evaluate`` is the function; the evaluator module of the same name is imported as
``from fewshot_mem.evaluate import evaluate_online`` (or ``importlib.import_module``).
"""

__version__ = "0.1.0"

from .api import Results, evaluate  # noqa: E402  (after __version__, which the modules below read)
from .data.episodes import EpisodeBatch, EpisodicInputs, OnlineInputs, SequenceBatch  # noqa: E402
from .data.stream import EpisodeStream  # noqa: E402
from .errors import FewshotMemError, UnsupportedProtocolError  # noqa: E402
from .models.adapters import EpisodicFunction, Prototypes, RecurrentStep  # noqa: E402
from .models.contract import check_learner  # noqa: E402
from .models.learner import Learner, SequenceLearner, TaskSpec  # noqa: E402
from .models.registry import create  # noqa: E402
from .suites import SUITES, Suite, get_suite  # noqa: E402

__all__ = ["EpisodeBatch", "EpisodeStream", "EpisodicFunction", "EpisodicInputs", "FewshotMemError", "Learner",
           "OnlineInputs", "Prototypes", "RecurrentStep", "Results", "SUITES", "SequenceBatch", "SequenceLearner",
           "Suite", "TaskSpec", "UnsupportedProtocolError", "__version__", "check_learner", "create", "evaluate",
           "get_suite"]
