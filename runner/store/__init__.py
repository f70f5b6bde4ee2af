"""Where packs are kept: the local pack store with retention tiers and holds."""
