"""A small Dockerfile parser: enough to read stages, their parents and instructions without Docker."""

from __future__ import annotations

import re
import shlex

import yaml


class Dockerfile:
    """The stages of a Dockerfile: name, parent, and instructions (continuation lines joined)."""

    def __init__(self, args: dict[str, str], stages: list[dict]) -> None:
        self.args = args
        self.stages = stages

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        joined = re.sub(r"\\\n", " ", text)
        args: dict[str, str] = {}
        stages: list[dict] = []
        for raw in joined.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            op, _, rest = line.partition(" ")
            op = op.upper()
            if op == "FROM":
                parts = rest.split()
                parent = parts[0]
                name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
                stages.append({"name": name, "parent": parent, "ops": []})
            elif op == "ARG" and not stages:
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
            elif stages:
                stages[-1]["ops"].append((op, rest.strip()))
        return cls(args, stages)

    def stage(self, name: str) -> dict:
        for stage in self.stages:
            if stage["name"] == name:
                return stage
        raise KeyError(f"no stage {name!r}")

    def chain(self, name: str) -> list[dict]:
        """The stage and the stages it derives from, nearest first."""
        names = {s["name"] for s in self.stages}
        out = [self.stage(name)]
        while out[-1]["parent"] in names:
            out.append(self.stage(out[-1]["parent"]))
        return out

    def effective(self, name: str, op: str) -> list[str]:
        """The values of `op` a stage has, its own last (inherited ones first)."""
        values: list[str] = []
        for stage in reversed(self.chain(name)):
            values.extend(rest for o, rest in stage["ops"] if o == op)
        return values

    def base_image(self) -> str:
        first = self.stages[0]["parent"]
        match = re.fullmatch(r"\$\{?(\w+)\}?", first)
        return self.args.get(match.group(1), "") if match else first


def exec_form(value: str) -> list[str]:
    """An instruction's argument as argv: a JSON list, or a shell line split like sh would."""
    value = value.strip()
    if value.startswith("["):
        return yaml.safe_load(value)
    return shlex.split(value)
