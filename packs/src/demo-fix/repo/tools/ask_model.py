"""Ask an OpenAI-compatible chat endpoint for a fix; print the answer. Standard library only."""

import json
import os
import sys
import urllib.request

URL = os.environ.get("MODEL_URL", "https://api.openai.com/v1/chat/completions")


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        prompt = f.read()
    body = {
        "model": "gpt-4o-mini",
        "seed": 424242,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You fix failing Python tests. Answer with a unified diff."},
            {"role": "user", "content": prompt},
        ],
    }
    request = urllib.request.Request(
        URL,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + os.environ.get("OPENAI_API_KEY", "sk-replay-placeholder"),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    print(answer["choices"][0]["message"]["content"])


if __name__ == "__main__":
    main()
