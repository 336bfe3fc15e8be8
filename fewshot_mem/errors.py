"""Errors that explain themselves: what went wrong, where, and what to do."""


class FewshotMemError(Exception):
    """Base of every error fewshot-mem raises on bad input; the CLI prints its message."""


class DataNotFoundError(FewshotMemError):
    """No data set where we looked, and none could be downloaded."""


class DataCorruptError(FewshotMemError):
    """A data set is there but incomplete or damaged."""


class DownloadError(FewshotMemError):
    """A download failed or did not match its checksum; nothing was kept."""


class CacheError(FewshotMemError):
    """A cache could not be written where it belongs."""


class RunFileError(FewshotMemError):
    """A file of a training run (a checkpoint, the metrics log) is damaged or unreadable."""


class CheckpointError(RunFileError):
    """A checkpoint cannot be read: missing, empty, truncated, or not a checkpoint."""


class DirectoryInUseError(FewshotMemError):
    """Another process holds the lock on a directory (two trainings in one run directory)."""


class UnsupportedProtocolError(FewshotMemError):
    """A suite table that the model cannot answer (an adapter for one protocol on a suite with both)."""
