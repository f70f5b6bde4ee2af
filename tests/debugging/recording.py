"""The guide's research recording, shared by the debugging tests, and where the tests live."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from runner.debugging import Checkpoint, CheckpointManager
from runner.observability import Trace, TracerProvider

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


@dataclasses.dataclass
class Recording:
    provider: TracerProvider
    trace: Trace
    spans: dict[str, str]  # span name -> span id
    agent: Any
    after_query_1: Checkpoint


def record_research(db: str = "research_traces.db") -> Recording:
    """The guide's recording, with the LLM answers recorded as `llm` spans (made distinct from live ones)."""
    import research_agent

    provider = TracerProvider(db_path=db)
    tracer = provider.get_tracer("research_agent")
    recorded_llm = tracer.traced("llm", name="call_llm")(lambda prompt: f"recorded: {prompt.upper()}")
    live_llm, research_agent.call_llm = research_agent.call_llm, recorded_llm
    try:
        agent = research_agent.ResearchAgent()
        manager = CheckpointManager()
        with tracer.span("research_workflow") as root_span:
            with tracer.span("query_1", input="What is AI safety?") as q1:
                agent.research("What is AI safety?")
            with tracer.span("query_2", input="What are the risks?") as q2:
                after_1 = manager.create_checkpoint(
                    agent, provider.trace_store.get_trace(q2.trace_id), q1.span_id
                )
                agent.research("What are the risks?")
    finally:
        research_agent.call_llm = live_llm
    provider.shutdown()
    trace = provider.trace_store.get_trace(root_span.trace_id)
    ids = {s.name: s.span_id for s in trace.spans if s.name != "call_llm"}
    ids.update({f"llm_{i}": s.span_id for i, s in enumerate(s for s in trace.spans if s.name == "call_llm")})
    return Recording(provider, trace, ids, agent, after_1)
