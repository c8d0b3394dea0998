"""A flow that always fails: the run ends FAILED with a ValueError."""


def fail(message: str = "boom") -> None:
    print(f"About to fail with {message!r}")
    raise ValueError(message)
