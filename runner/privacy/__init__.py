"""Privacy and security of repro packs: redaction policies, keys and sealing, signing, audit, a pack store.

Modules: `policy` (named, versioned redaction policies), `mask` (the redaction pass run when a pack is
built, and the privileged reveal), `crypto` (tenant keyrings, AEAD sealing), `sign` (Ed25519 statements
over a pack's root digest), `audit` (the per-session summary), `store` (content-addressed pack store
with retention tiers and legal holds). This package never imports `store` here: `runner.pack` imports
`mask`, and `store` imports `runner.pack`.
"""
