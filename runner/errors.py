"""Every error the runner raises on purpose, one subclass per pipeline stage, and the exit codes.

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
    ├── DebugError               a checkpoint or a time-travel replay failed           exit 2
    └── ConfigError              a configuration registry refused a change or is bad   exit 2
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ConfigError",
    "DebugError",
    "EngineError",
    "EnvironmentProblem",
    "ExecuteError",
    "ExitCode",
    "ImageError",
    "PackError",
    "PrivacyError",
    "ProxyError",
    "RecordError",
    "RunnerError",
    "UsageError",
    "WorkspaceError",
]


class ExitCode(IntEnum):
    """The command line's exit codes, named once (README, "Exit codes")."""

    OK = 0  # every pack reproduced; the command did what was asked
    DIVERGED = 1  # a replay diverged, an expectation failed
    BAD_INPUT = 2  # unreadable, unsafe or invalid input; a usage error
    ENVIRONMENT = 3  # the machine cannot run the work (no engine, image unavailable)
    INTERRUPTED = 130  # Ctrl-C


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""

    exit_code: int = ExitCode.BAD_INPUT


class UsageError(RunnerError):
    exit_code = ExitCode.BAD_INPUT


class PackError(RunnerError):
    exit_code = ExitCode.BAD_INPUT


class EnvironmentProblem(RunnerError):
    exit_code = ExitCode.ENVIRONMENT


class EngineError(EnvironmentProblem):
    pass


class ImageError(EnvironmentProblem):
    pass


class WorkspaceError(RunnerError):
    exit_code = ExitCode.BAD_INPUT


class ProxyError(RunnerError):
    exit_code = ExitCode.ENVIRONMENT


class ExecuteError(RunnerError):
    exit_code = ExitCode.ENVIRONMENT


class RecordError(RunnerError):
    exit_code = ExitCode.BAD_INPUT


class PrivacyError(RunnerError):
    exit_code = ExitCode.BAD_INPUT


class ConfigError(RunnerError):
    exit_code = ExitCode.BAD_INPUT


class DebugError(RunnerError):
    exit_code = ExitCode.BAD_INPUT
