"""An example agent recorded with the SDK: it asks a model for a fix, applies it and runs the tests.

Usage: python agent.py REPO PACK   (OPENAI_BASE_URL and OPENAI_API_KEY name the model server)
The model is asked to answer with the corrected line; the agent writes it, captures the patch and runs
pytest with JUnit output. Everything goes into PACK.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import openai

from runner.recorder import record

SYSTEM = "You fix Python bugs. Answer with the corrected line of code only."


def main(repo: Path, pack: Path, **options: Any) -> int:
    with record(out=pack, repo=repo, agent="sdk-agent", **options) as session:
        client = session.instrument(openai.OpenAI())
        with session.task("fix test_above"):
            before = session.run_tool(["python", "-m", "pytest", "-q"], cwd=repo)
            source = (repo / "clamp.py").read_text()
            answer = client.chat.completions.create(
                model="gpt-4o-mini",
                temperature=0,
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"pytest says:\n{before.stdout.decode()}\n\n{source}"},
                ],
            )
            # The example server echoes; a real model would answer with the fixed line.
            reply = answer.choices[0].message.content or ""
            session.artifact(reply.encode(), name="model-reply.txt", media_type="text/plain")
            (repo / "clamp.py").write_text(source.replace("min(value, low)", "min(value, high)"))
            session.capture_patch(reason="use the upper bound in clamp")
            session.run_tool(["python", "-m", "pytest", "-q", "--junitxml=junit.xml"], cwd=repo,
                             outputs=["junit.xml"])  # fmt: skip
    print(session.summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
