#!/usr/bin/env python3
"""Two flag documents for the soak (scripts/soak.sh): the same keys, different values, so that
every switch between them is a change the relay must apply, persist and stream."""
import argparse

p = argparse.ArgumentParser()
p.add_argument("--flags", type=int, default=200)
p.add_argument("--variant", type=int, choices=[0, 1], required=True)
p.add_argument("--out", required=True)
a = p.parse_args()

lines = [f"# soak flag document, variant {a.variant}"]
for i in range(a.flags):
    key = f"flag-{i:04d}"
    rollout = (i * 7 + a.variant * 30) % 101
    kind = i % 5
    if kind == 0:
        lines.append(f"{key}: {{enabled: true, rollout: {rollout}}}")
    elif kind == 1:
        on, off = ("blue", "green") if a.variant == 0 else ("red", "grey")
        lines.append(f"{key}: {{enabled: true, rollout: {rollout}, value: {{on: {on}, off: {off}}}}}")
    elif kind == 2:
        lines.append(
            f"{key}: {{enabled: true, users: [user-1, user-{i}], tenants: [tenant-{i % 7}], "
            f"rollout: {rollout}, value: {{on: {i + a.variant}, off: 0}}}}"
        )
    elif kind == 3:
        lines.append(f"{key}: {{enabled: {str(a.variant == 0).lower()}, envs: [production], rollout: 100}}")
    else:
        lines.append(
            f"{key}: {{enabled: true, rollout: {rollout}, value: {{on: {{limit: {i}, v: {a.variant}}}, "
            f"off: {{limit: 0, v: {a.variant}}}}}, metadata: {{team: soak, n: {i}}}}}"
        )
with open(a.out, "w") as f:
    f.write("\n".join(lines) + "\n")
