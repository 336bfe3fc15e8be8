"""What to cite for a suite's numbers: the suite itself, its data set, and the models' papers.

``python -m fewshot_mem.bench --cite omniglot-5way [--models mann,protonet]`` prints BibTeX:
the suite (its ``name@version`` and fingerprint in the note, which is what makes a number
reproducible), the papers whose protocol it follows, the data set, and the papers of the
models compared (each learner class's ``references``). A plug-in learner contributes its own
entry through a ``bibtex`` class attribute.
"""

from __future__ import annotations

from pathlib import Path

from . import __version__
from .errors import FewshotMemError
from .models.registry import resolve
from .results import read_result, results_dir
from .suites import Suite

AUTHORS = "fewshot-mem developers"
RELEASE_YEAR = 2026

BIBTEX: dict[str, str] = {
    "lake2015": """@article{lake2015,
  title = {Human-level concept learning through probabilistic program induction},
  author = {Lake, Brenden M. and Salakhutdinov, Ruslan and Tenenbaum, Joshua B.},
  journal = {Science},
  volume = {350},
  number = {6266},
  pages = {1332--1338},
  year = {2015},
  doi = {10.1126/science.aab3050}
}""",
    "vinyals2016": """@inproceedings{vinyals2016,
  title = {Matching Networks for One Shot Learning},
  author = {Vinyals, Oriol and Blundell, Charles and Lillicrap, Timothy and Kavukcuoglu, Koray and Wierstra, Daan},
  booktitle = {Advances in Neural Information Processing Systems 29 (NIPS 2016)},
  pages = {3630--3638},
  year = {2016}
}""",
    "ravi2017": """@inproceedings{ravi2017,
  title = {Optimization as a Model for Few-Shot Learning},
  author = {Ravi, Sachin and Larochelle, Hugo},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year = {2017}
}""",
    "andrychowicz2016": """@inproceedings{andrychowicz2016,
  title = {Learning to learn by gradient descent by gradient descent},
  author = {Andrychowicz, Marcin and Denil, Misha and G{\\'o}mez Colmenarejo, Sergio and Hoffman, Matthew W. and
            Pfau, David and Schaul, Tom and Shillingford, Brendan and de Freitas, Nando},
  booktitle = {Advances in Neural Information Processing Systems 29 (NIPS 2016)},
  pages = {3981--3989},
  year = {2016}
}""",
    "santoro2016": """@inproceedings{santoro2016,
  title = {Meta-Learning with Memory-Augmented Neural Networks},
  author = {Santoro, Adam and Bartunov, Sergey and Botvinick, Matthew and Wierstra, Daan and Lillicrap, Timothy},
  booktitle = {Proceedings of the 33rd International Conference on Machine Learning (ICML)},
  series = {Proceedings of Machine Learning Research},
  volume = {48},
  pages = {1842--1850},
  year = {2016}
}""",
    "graves2014": """@article{graves2014,
  title = {Neural Turing Machines},
  author = {Graves, Alex and Wayne, Greg and Danihelka, Ivo},
  journal = {arXiv preprint arXiv:1410.5401},
  year = {2014}
}""",
    "graves2016": """@article{graves2016,
  title = {Hybrid computing using a neural network with dynamic external memory},
  author = {Graves, Alex and Wayne, Greg and Reynolds, Malcolm and Harley, Tim and Danihelka, Ivo and
            Grabska-Barwi{\\'n}ska, Agnieszka and G{\\'o}mez Colmenarejo, Sergio and Grefenstette, Edward and
            Ramalho, Tiago and Agapiou, John and Puigdom{\\`e}nech Badia, Adri{\\`a} and Hermann, Karl Moritz and
            Zwols, Yori and Ostrovski, Georg and Cain, Adam and King, Helen and Summerfield, Christopher and
            Blunsom, Phil and Kavukcuoglu, Koray and Hassabis, Demis},
  journal = {Nature},
  volume = {538},
  number = {7626},
  pages = {471--476},
  year = {2016},
  doi = {10.1038/nature20101}
}""",
    "hochreiter1997": """@article{hochreiter1997,
  title = {Long Short-Term Memory},
  author = {Hochreiter, Sepp and Schmidhuber, J{\\"u}rgen},
  journal = {Neural Computation},
  volume = {9},
  number = {8},
  pages = {1735--1780},
  year = {1997},
  doi = {10.1162/neco.1997.9.8.1735}
}""",
    "finn2017": """@inproceedings{finn2017,
  title = {Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks},
  author = {Finn, Chelsea and Abbeel, Pieter and Levine, Sergey},
  booktitle = {Proceedings of the 34th International Conference on Machine Learning (ICML)},
  series = {Proceedings of Machine Learning Research},
  volume = {70},
  pages = {1126--1135},
  year = {2017}
}""",
    "rajeswaran2019": """@inproceedings{rajeswaran2019,
  title = {Meta-Learning with Implicit Gradients},
  author = {Rajeswaran, Aravind and Finn, Chelsea and Kakade, Sham M. and Levine, Sergey},
  booktitle = {Advances in Neural Information Processing Systems 32 (NeurIPS 2019)},
  pages = {113--124},
  year = {2019}
}""",
    "snell2017": """@inproceedings{snell2017,
  title = {Prototypical Networks for Few-shot Learning},
  author = {Snell, Jake and Swersky, Kevin and Zemel, Richard},
  booktitle = {Advances in Neural Information Processing Systems 30 (NIPS 2017)},
  pages = {4077--4087},
  year = {2017}
}""",
    "arnold2020": """@article{arnold2020,
  title = {learn2learn: A Library for Meta-Learning Research},
  author = {Arnold, S{\\'e}bastien M. R. and Mahajan, Praateek and Datta, Debajyoti and Bunner, Ian and
            Zarkias, Konstantinos Saitas},
  journal = {arXiv preprint arXiv:2008.12284},
  year = {2020}
}""",
}

DATASET_REFERENCES: dict[str, tuple[str, ...]] = {
    "omniglot": ("lake2015",),
    "miniimagenet": ("vinyals2016", "ravi2017"),  # the images of Vinyals et al., the split of Ravi & Larochelle
}

def suite_key(suite: Suite) -> str:
    """A BibTeX key for a suite (keys may not contain '@' or '-' in every style)."""
    return f"fewshotmem_{suite.name.replace('-', '_')}_v{suite.version}"


def suite_bibtex(suite: Suite, fingerprint: str | None) -> str:
    """The suite's own entry; the note names exactly which test episodes the numbers are on."""
    measured_on = f"fingerprint {fingerprint}" if fingerprint else \
        "fingerprint: see python -m fewshot_mem.bench --list"
    return f"""@misc{{{suite_key(suite)},
  title = {{fewshot-mem: {suite.title}}},
  author = {{{{{AUTHORS}}}}},
  year = {{{RELEASE_YEAR}}},
  version = {{{__version__}}},
  note = {{Suite {suite.id}, {suite.test_episodes} frozen test episodes, {measured_on}}}
}}"""


def model_bibtex(model: str) -> list[str]:
    """The entries of a model's papers: its class's ``references`` (keys of :data:`BIBTEX`), and a
    plug-in's own ``bibtex`` string."""
    try:
        learner = resolve(model)
    except FewshotMemError:  # e.g. a plug-in with results on disk that is not installed here
        return [f"% {model}: cannot be imported here, so its BibTeX is unknown"]
    unknown = [key for key in learner.references if key not in BIBTEX]
    if unknown:  # a class naming a reference this module lacks is a bug in that class
        raise FewshotMemError(f"no BibTeX for {', '.join(unknown)} (cited by {learner.__name__}.references)")
    entries = [BIBTEX[key] for key in learner.references]
    entry = getattr(learner, "bibtex", None)
    if entry:
        entries.append(entry.strip())
    return entries or [f"% {model}: no BibTeX known (a plug-in learner can give one as its `bibtex` class "
                       "attribute)"]


def models_in_results(out: str | Path, suite: Suite) -> list[str]:
    """The models that have results for ``suite`` under ``out`` (as the bench writes them)."""
    models: list[str] = []
    for path in sorted(results_dir(out, suite.id).glob("*.json")):
        try:
            model = read_result(path).get("model")
        except (OSError, ValueError, AttributeError):
            continue  # not a results file: nothing to cite from it
        if isinstance(model, str) and model not in models:
            models.append(model)
    return models


def cite(suite: Suite, models: list[str], fingerprint: str | None = None) -> str:
    """BibTeX for the suite, the papers it follows, its data set and ``models``, each entry once."""
    keys = list(suite.references) + list(DATASET_REFERENCES.get(suite.dataset, ()))
    missing = [key for key in keys if key not in BIBTEX]
    if missing:  # a suite naming a reference this module lacks is a bug in the suite table
        raise FewshotMemError(f"no BibTeX for {', '.join(missing)} (cited by {suite.id})")
    entries = [suite_bibtex(suite, fingerprint)] + [BIBTEX[key] for key in keys]
    for model in models:
        entries += model_bibtex(model)
    return "\n\n".join(dict.fromkeys(entries)) + "\n"
