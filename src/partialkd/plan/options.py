"""A params.yaml mapping as the command-line options of a step: the workflow passes a track's
`data` section to `python -m partialkd.prepare <track>`, its `input` section to its trainer and
its `analysis` bounds to the analyses, each key as the option of the same name."""
from __future__ import annotations

import shlex
from typing import Any


def command_options(section: dict[str, Any]) -> str:
    """`key: value` as `--key value` (underscores as hyphens, values quoted for the shell): a
    mapping as one `--key NAME=VALUE` per entry, a boolean as `--key` or `--no-key`; an unset
    value (null or '') gives no option, so the step's default applies."""
    options = []
    for key, value in section.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            options.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, dict):
            options += [f"{flag} {shlex.quote(f'{name}={entry}')}" for name, entry in value.items()]
        elif value is not None and value != "":
            options.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(options)
