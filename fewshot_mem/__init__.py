"""fewshot-mem: one benchmark for memory-augmented, gradient and metric few-shot learners."""

__version__ = "0.1.0"
