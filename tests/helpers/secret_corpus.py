"""Planted secrets of every kind the default policy must catch, built from a seeded generator.

`corpus()` returns `Planted(kind, value, context)` values: `value` is exactly what must never be readable
in a pack and must come back with the key; `context` is how it appears in a file, header or prompt.
`base64` entries are a whole value (a JSON string, a body): plant them alone, not inside a line.
The pack tests also plant every context in a latin-1 file and a binary member (non-UTF-8 bytes around).
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Planted:
    kind: str
    value: str
    context: str  # the line it is planted in


def corpus(seed: int = 7) -> list[Planted]:
    rnd = random.Random(seed)

    def r(n: int, alphabet: str = ALNUM) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(n))

    out: list[Planted] = []

    def add(kind: str, value: str, context: str | None = None) -> None:
        out.append(Planted(kind, value, context or value))

    for _ in range(4):
        add("openai-key", "sk-proj-" + r(40))
    for _ in range(3):
        add("anthropic-key", "sk-ant-api03-" + r(60, ALNUM + "-_"))
    for prefix in ("ghp_", "gho_", "ghs_"):
        add("github-token", prefix + r(36))
    for _ in range(2):
        add("github-token", "github_pat_" + r(22) + "_" + r(59))
    for _ in range(3):
        add("gitlab-token", "glpat-" + r(20))
    for _ in range(3):
        add("aws-access-key", "AKIA" + r(16, string.ascii_uppercase + string.digits))
    for _ in range(3):
        secret = r(40, ALNUM + "/+")
        add("aws-secret-key", secret, f"aws_secret_access_key = {secret}")
    for _ in range(3):
        add("gcp-api-key", "AIza" + r(35, ALNUM + "_-"))
    for kind in ("xoxb", "xoxp", "xoxa"):
        add("slack-token", f"{kind}-{r(12, string.digits)}-{r(12, string.digits)}-{r(24)}")
    for _ in range(2):
        head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
        body = base64.urlsafe_b64encode(f'{{"sub":"{r(8)}","admin":true}}'.encode()).decode().rstrip("=")
        add("jwt", f"{head}.{body}.{r(43, ALNUM + '-_')}")
    for label in ("RSA PRIVATE KEY", "OPENSSH PRIVATE KEY"):
        lines = "\n".join(r(64, ALNUM + "+/") for _ in range(4))
        add("private-key", f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----")
    for _ in range(3):
        token = r(32, ALNUM + "._-")
        add("bearer", token, f"Authorization: Bearer {token}")
    for _ in range(2):
        creds = base64.b64encode(f"{r(6)}:{r(14)}".encode()).decode()
        add("basic-auth", creds, f"Authorization: Basic {creds}")
    for _ in range(3):
        password = r(16)
        add("url-credentials", password, f"git clone https://deploy:{password}@git.example.com/acme/app.git")
    for key in ("password", "DB_PASSWORD", "secret", "client_secret", "token", "SESSION_TOKEN"):
        value = r(18)
        add("assignment", value, f"{key}={value}")
    for _ in range(3):
        add("email", f"{r(8, string.ascii_lowercase)}.{r(6, string.ascii_lowercase)}@example-corp.com")
    add("phone", "+1 415 555 0134")
    add("phone", "+44 20 7946 0958")
    add("phone", "(415) 555-0199")
    add("huggingface-token", "hf_" + r(34))
    add("stripe-key", "sk_live_" + r(24))
    # Forms the first detectors missed (issue 15).
    for key in ("SECRET_KEY", "DB_PASS", "PGPASSWORD", "export DJANGO_SECRET_KEY"):
        value = r(20)
        add("assignment", value, f"{key}={value}")
    for template in ('"body": "{{\\"password\\": \\"{v}\\", \\"user\\": \\"bob\\"}}"', 'password = "{v}"'):
        value = f"{r(6)} {r(7)} {r(5)}" if "= " in template else r(16)
        add("assignment", value, template.format(v=value))
    for template in ("deploy --password {v} --host db", "cli --token {v}", "cli --api-key {v} -v",
                     "sshpass -p {v} ssh build@ci", "mysql -u root -p{v} app"):  # fmt: skip
        value = r(18)
        add("flag", value, template.format(v=value))
    for name in ("X-Custom-Auth", "X-Api-Token", "X-Session-Key"):
        value = r(24)
        add("header", value, f'curl -H "{name}: {value}" https://api.example.com/v1')
    value = "sk-proj-" + r(40)
    add("openai-key", value, f'{{"{value}": "prod"}}')  # a secret as a JSON object key
    inner = f'{{"user": "ci", "password": "{r(20)}"}}'.encode()
    add("base64", base64.b64encode(inner).decode())
    return out


def history_secret(seed: int = 11) -> Planted:
    """A key a commit added and a later commit removed: only the git history holds it."""
    rnd = random.Random(seed)
    value = "sk-proj-" + "".join(rnd.choice(ALNUM) for _ in range(40))
    return Planted("openai-key", value, f'OPENAI_API_KEY = "{value}"')
