#!/usr/bin/env python3
"""Write a generated flag document for the load benchmark (scripts/bench-load.sh).

Same shape as benches/common/mod.rs: flag i is `flag-{i:06}` with a description and a rollout;
every 10th has a user allow list, every 7th a tenant allow list, every 5th an environment gate,
every 4th string values, every 3rd metadata; every 11th is disabled. `--variant` shifts every
rollout, so two variants are two different flag sets of the same size and shape.

    gen_flags.py --flags 100000 --format yaml --variant 1 --out target/bench-load/b.yaml
"""
import argparse
import os


def flag(i, variant):
    f = {
        "key": f"flag-{i:06}",
        "description": f"Generated flag {i}",
        "enabled": i % 11 != 0,
        "rollout": (i * 37 + variant * 13) % 101,
        "users": [f"user-{(i + u * 997) % 10000}" for u in range(5)] if i % 10 == 0 else [],
        "tenants": [f"tenant-{i % 50}", f"tenant-{(i + 1) % 50}"] if i % 7 == 0 else [],
        "envs": ["production", "staging"] if i % 5 == 0 else [],
        "values": (f"variant-b-{i % 9}", "variant-a") if i % 4 == 0 else None,
        "metadata": (f"team-{i % 17}", f"FR-{i}") if i % 3 == 0 else None,
    }
    return f


def qlist(items):
    return "[" + ", ".join(f'"{s}"' for s in items) + "]"


def yaml_flag(f):
    lines = [
        f"{f['key']}:",
        f"  description: \"{f['description']}\"",
        f"  enabled: {'true' if f['enabled'] else 'false'}",
        f"  rollout: {f['rollout']}",
    ]
    if f["users"]:
        lines.append(f"  users: {qlist(f['users'])}")
    if f["tenants"]:
        lines.append(f"  tenants: {qlist(f['tenants'])}")
    if f["envs"]:
        lines.append(f"  envs: {qlist(f['envs'])}")
    if f["values"]:
        on, off = f["values"]
        lines.append(f'  value: {{on: "{on}", off: "{off}"}}')
    if f["metadata"]:
        team, ticket = f["metadata"]
        lines.append(f'  metadata: {{team: "{team}", ticket: "{ticket}"}}')
    return "\n".join(lines) + "\n"


def json_flag(f, last):
    fields = [
        f"\"description\": \"{f['description']}\"",
        f"\"enabled\": {'true' if f['enabled'] else 'false'}",
        f"\"rollout\": {f['rollout']}",
    ]
    if f["users"]:
        fields.append(f"\"users\": {qlist(f['users'])}")
    if f["tenants"]:
        fields.append(f"\"tenants\": {qlist(f['tenants'])}")
    if f["envs"]:
        fields.append(f"\"envs\": {qlist(f['envs'])}")
    if f["values"]:
        on, off = f["values"]
        fields.append(f'"value": {{"on": "{on}", "off": "{off}"}}')
    if f["metadata"]:
        team, ticket = f["metadata"]
        fields.append(f'"metadata": {{"team": "{team}", "ticket": "{ticket}"}}')
    return f"  \"{f['key']}\": {{{', '.join(fields)}}}{'' if last else ','}\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flags", type=int, required=True)
    p.add_argument("--format", choices=["yaml", "json"], required=True)
    p.add_argument("--variant", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    parts = ["{\n"] if a.format == "json" else []
    for i in range(a.flags):
        f = flag(i, a.variant)
        parts.append(yaml_flag(f) if a.format == "yaml" else json_flag(f, i + 1 == a.flags))
    if a.format == "json":
        parts.append("}\n")
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(parts))
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
