"""Fargate task sizes: the cpu units and memory (MiB) combinations Fargate accepts."""

from __future__ import annotations


def _steps(low: int, high: int, step: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1, step))


#: cpu units -> the memory sizes (MiB) Fargate accepts with it.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: _steps(1024, 4096, 1024),
    1024: _steps(2048, 8192, 1024),
    2048: _steps(4096, 16384, 1024),
    4096: _steps(8192, 30720, 1024),
    8192: _steps(16384, 61440, 4096),
    16384: _steps(32768, 122880, 8192),
}
DEFAULT_CPU = 1024
DEFAULT_MEMORY = 2048


def describe_memory(cpu: int) -> str:
    """The memory sizes allowed with ``cpu``, for humans."""
    sizes = FARGATE_SIZES[cpu]
    if len(sizes) <= 3:
        return ", ".join(str(m) for m in sizes)
    return f"{sizes[0]} to {sizes[-1]} in steps of {sizes[1] - sizes[0]}"


def resolve(cpu: int | None, memory: int | None) -> tuple[int, int]:
    """A valid Fargate ``(cpu, memory)``, filling in what is missing; ``ValueError`` if none.

    Neither given: the default size. Only cpu: its smallest memory. Only memory: the
    smallest cpu that accepts it.
    """
    if cpu is None and memory is None:
        return DEFAULT_CPU, DEFAULT_MEMORY
    if cpu is None:
        assert memory is not None
        for candidate, sizes in FARGATE_SIZES.items():
            if memory in sizes:
                return candidate, memory
        raise ValueError(f"no Fargate cpu size accepts memory {memory} MiB")
    if cpu not in FARGATE_SIZES:
        choices = ", ".join(str(c) for c in FARGATE_SIZES)
        raise ValueError(f"cpu {cpu} is not a Fargate size; choose one of {choices}")
    if memory is None:
        return cpu, FARGATE_SIZES[cpu][0]
    if memory not in FARGATE_SIZES[cpu]:
        raise ValueError(
            f"memory {memory} MiB is not valid with cpu {cpu} on Fargate; "
            f"choose {describe_memory(cpu)} MiB"
        )
    return cpu, memory
