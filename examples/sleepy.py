"""A long-running flow, handy to try cancellation (SIGTERM or the cancel API)."""

import time


def sleep(seconds: float = 60.0) -> float:
    print(f"Sleeping for {seconds} s", flush=True)
    step = 0.1
    slept = 0.0
    next_report = 1.0
    while slept < seconds:
        time.sleep(min(step, seconds - slept))
        slept += step
        if slept >= next_report:
            print(f"... slept {next_report:.0f} s", flush=True)
            next_report += 1.0
    print("Done sleeping")
    return seconds
