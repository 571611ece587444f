"""`gage run --proto RUN [NAME=VALUE...]`: a new run of RUN's op with
RUN's config, changed by the values given (Guild's --proto)."""

from __future__ import annotations

from .common import select_run, usage

_QUOTES = ("'", '"')


def proto_words(args, words: list[str]) -> tuple[str, list[str]]:
    """(op, NAME=VALUE words): RUN's config as words, then `words`."""
    import json

    from ..home import runs
    from ..store import run_meta

    if words and "=" not in words[0]:
        raise usage(
            f"--proto takes the op from its run: '{words[0]}' is not "
            "NAME=VALUE (drop the op name)"
        )
    proto = select_run(args, args.proto)
    op = runs.op_name(proto)
    if not op:
        raise usage(f"--proto {args.proto}: run {proto.name} has no op")
    config = run_meta.read_config(proto) or {}
    given = {w.split("=", 1)[0] for w in words}
    base = [
        f"{k}={v if isinstance(v, str) and v[:1] not in _QUOTES else json.dumps(v)}"
        for k, v in config.items()
        if k not in given
    ]
    return op, base + list(words)
