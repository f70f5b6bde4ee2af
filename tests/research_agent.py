"""The research agent of the time-travel debugging guide, importable as `research_agent` by the tests.

`call_llm` is a module-level function (so the import path ``research_agent.call_llm`` can be mocked) that
the agent's `call_llm` method delegates to; the method itself can be mocked as
``research_agent.ResearchAgent.call_llm``.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import time
import uuid
from typing import Any


def call_llm(prompt: str) -> str:
    return f"Answer to: {prompt}"


def search_web(query: str) -> list[str]:
    return [f"https://example.org/?q={query}"]


class ResearchAgent:
    def __init__(self) -> None:
        self.memory: list[dict[str, Any]] = []
        self.total_cost = 0.0

    def get_state(self) -> dict[str, Any]:
        return {"memory": self.memory, "total_cost": self.total_cost}

    def load_state(self, state: dict[str, Any]) -> None:
        self.memory = state["memory"]
        self.total_cost = state["total_cost"]

    def research(self, query: str) -> str:
        self.memory.append({"query": query})
        result = self.call_llm(query)
        self.memory.append({"result": result})
        self.total_cost += 0.25
        return result

    def call_llm(self, prompt: str) -> str:
        return call_llm(prompt)

    def survey(self, queries: list[str]) -> list[str]:
        return [self.research(q) for q in queries]

    def noisy(self) -> dict[str, Any]:
        """Everything a replay must make repeatable."""
        return {
            "time": [time.time(), time.time_ns()],
            "now": datetime.datetime.now().isoformat(),
            "random": [random.random(), random.randint(0, 10**9), random.choice("abcdefgh")],
            "uuid": [str(uuid.uuid4()), str(uuid.uuid4())],
        }


@dataclasses.dataclass(frozen=True)
class Note:
    topic: str
    tags: tuple[str, ...]


class Notebook:
    """Plain class no typed-JSON tag covers: it can only be saved with allow_pickle."""

    def __init__(self, pages: list[str]) -> None:
        self.pages = pages

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Notebook) and other.pages == self.pages

    __hash__ = None  # type: ignore[assignment]


class AsyncResearchAgent(ResearchAgent):
    async def aresearch(self, query: str) -> str:
        self.memory.append({"query": query})
        result = call_llm(query)
        return result


def forgiving_research(agent: ResearchAgent, queries: list[str]) -> list[str]:
    """Swallows every error, as agents with retry loops often do."""
    answers = []
    for q in queries:
        try:
            answers.append(agent.research(q))
        except Exception:
            answers.append("fallback")
    return answers
