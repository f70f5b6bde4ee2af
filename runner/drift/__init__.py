"""Drift checks against live providers, two recordings side by side, and prompt/tool contracts.

`check` re-sends recorded model calls (found by `calls`, sent by `resend`, scored by `score`); `packdiff`
compares two packs; `contract` checks the prompts and tool schemas advertised to the model. docs/drift.md.
"""
