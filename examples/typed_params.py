"""A flow with typed parameters (pair it with a parameter_schema on the deployment)."""


def add(a: int, b: int = 2, label: str = "sum") -> dict[str, object]:
    total = a + b
    print(f"{label}: {a} + {b} = {total}")
    return {"label": label, "a": a, "b": b, "total": total}
