"""A helper with a bug for the recorded example session to fix."""


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, low))
