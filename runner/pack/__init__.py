"""The pack format both flows share: manifest, traces, snapshot, build, read and verify, summary."""
