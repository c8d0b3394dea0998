"""CPU and memory combinations Cloud Run jobs accept, with errors that say which rule broke.

CPU: 1, 2, 4, 6 or 8 vCPU. Memory: 512 MiB to 32 GiB; more than 4 GiB needs at least 2
vCPU, more than 8 GiB 4, more than 16 GiB 6, more than 24 GiB 8; 4 vCPU need at least
2 GiB, 6 and 8 vCPU at least 4 GiB.
"""

from __future__ import annotations

import re

CPUS = (1, 2, 4, 6, 8)
MIN_MIB, MAX_MIB = 512, 32 * 1024
DEFAULT_CPU, DEFAULT_MEMORY_MIB = 1, 512
#: (memory above this many MiB, needs at least this many vCPU)
_CPU_FOR_MEMORY = ((24 * 1024, 8), (16 * 1024, 6), (8 * 1024, 4), (4 * 1024, 2))
#: vCPU -> the least memory in MiB
_MEMORY_FOR_CPU = {4: 2 * 1024, 6: 4 * 1024, 8: 4 * 1024}
_QUANTITY = re.compile(r"(\d+)\s*(Mi|Gi|M|G)?")


def parse_cpu(value: int | float | str) -> int:
    text = str(value).strip()
    if text.endswith("m") and text[:-1].isdigit() and int(text[:-1]) % 1000 == 0:
        text = str(int(text[:-1]) // 1000)
    try:
        cpu = float(text)
    except ValueError:
        raise ValueError(
            f"cpu {value!r}: give a number of vCPU ({', '.join(map(str, CPUS))})"
        ) from None
    if cpu not in CPUS:
        raise ValueError(f"cpu {value!r}: Cloud Run jobs take {', '.join(map(str, CPUS))} vCPU")
    return int(cpu)


def parse_memory(value: int | str) -> int:
    """Memory in MiB from an int (MiB) or a quantity like ``512Mi``, ``2Gi``."""
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"memory {value!r}: give MiB or a quantity like 512Mi or 2Gi")
    number, unit = int(match.group(1)), match.group(2) or "Mi"
    mib = number * 1024 if unit in ("Gi", "G") else number
    if not MIN_MIB <= mib <= MAX_MIB:
        raise ValueError(f"memory {value!r}: Cloud Run jobs take 512Mi to 32Gi")
    return mib


def check(cpu: int, mib: int) -> None:
    for above, least in _CPU_FOR_MEMORY:
        if mib > above and cpu < least:
            raise ValueError(
                f"memory {mib}Mi needs at least {least} vCPU on Cloud Run (cpu is {cpu})"
            )
    least_mib = _MEMORY_FOR_CPU.get(cpu, MIN_MIB)
    if mib < least_mib:
        raise ValueError(f"cpu {cpu} needs at least {least_mib}Mi of memory on Cloud Run")


def resolve(cpu: int | float | str | None, memory: int | str | None) -> tuple[str, str]:
    """``(cpu, memory)`` as Cloud Run's resource limits, defaults filled, combination checked."""
    vcpu = DEFAULT_CPU if cpu is None else parse_cpu(cpu)
    mib = max(DEFAULT_MEMORY_MIB, _MEMORY_FOR_CPU.get(vcpu, 0)) if memory is None else None
    mib = parse_memory(memory) if memory is not None else mib
    assert mib is not None
    check(vcpu, mib)
    return str(vcpu), f"{mib}Mi"
