from clamp import clamp


def test_inside() -> None:
    assert clamp(5, 0, 10) == 5


def test_above() -> None:
    assert clamp(50, 0, 10) == 10
