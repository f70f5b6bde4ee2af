"""Every error the runner raises on purpose, one subclass per pipeline stage.

The CLI is the only place that prints them and picks the exit code; everything else raises.
Each message says what failed, on which file or request, and what to try next.

    RunnerError                  (base; exit_code 2 unless a subclass says otherwise)
    ├── UsageError               bad arguments or options                              exit 2
    ├── PackError                unreadable, unsafe, tampered or invalid pack          exit 2
    ├── EnvironmentProblem       the machine cannot run the work                       exit 3
    │   ├── EngineError          no Docker engine answers, or it failed
    │   └── ImageError           an image cannot be found, pulled or built
    ├── WorkspaceError           the base commit or a patch cannot be restored         exit 2
    ├── ProxyError               the cassette proxy could not start or load            exit 3
    ├── ExecuteError             a recorded command could not be started               exit 3
    ├── RecordError              a session could not be recorded                       exit 2
    ├── PrivacyError             wrong key, tampered ciphertext, bad signature         exit 2
    └── DebugError               a checkpoint or a time-travel replay failed           exit 2
"""

from __future__ import annotations

__all__ = [
    "DebugError",
    "EngineError",
    "EnvironmentProblem",
    "ExecuteError",
    "ImageError",
    "PackError",
    "PrivacyError",
    "ProxyError",
    "RecordError",
    "RunnerError",
    "UsageError",
    "WorkspaceError",
]


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""

    exit_code: int = 2


class UsageError(RunnerError):
    exit_code = 2


class PackError(RunnerError):
    exit_code = 2


class EnvironmentProblem(RunnerError):
    exit_code = 3


class EngineError(EnvironmentProblem):
    pass


class ImageError(EnvironmentProblem):
    pass


class WorkspaceError(RunnerError):
    exit_code = 2


class ProxyError(RunnerError):
    exit_code = 3


class ExecuteError(RunnerError):
    exit_code = 3


class RecordError(RunnerError):
    exit_code = 2


class PrivacyError(RunnerError):
    exit_code = 2


class DebugError(RunnerError):
    exit_code = 2
