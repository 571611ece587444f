"""Remote tables in gage.toml and the user config: checked at load,
errors name FILE:LINE."""

from __future__ import annotations

import pytest

from gage._internal.project import gagefile, remote_spec
from gage._internal.remote import config as remote_config
from gage._internal.types import GagefileError


def _load(tmp_path, text: str):
    path = tmp_path / "gage.toml"
    path.write_text(text + '[train]\nexec = "python train.py"\n')
    return gagefile.read_gagefile(str(path))


def test_remotes_in_gagefile(tmp_path):
    gf = _load(
        tmp_path,
        '"$remote" = "team"\n["$remotes".team]\nurl = "s3://b/p"\n'
        'endpoint-url = "http://127.0.0.1:9000"\n["$remotes".share]\nurl = "shared"\n',
    )
    assert gf.remote == "team"
    team, share = gf.remotes["team"], gf.remotes["share"]
    assert (team.url, team.options) == (
        "s3://b/p",
        {"endpoint-url": "http://127.0.0.1:9000"},
    )
    assert share.url == str(tmp_path / "shared")  # relative to gage.toml
    assert share.timeout == 30 and share.jobs == 8


@pytest.mark.parametrize(
    "text,line,msg",
    [
        (
            '["$remotes".t]\nurl = "/x"\nbogus = 1\n',
            3,
            "remote 't': unknown key 'bogus'",
        ),
        ('["$remotes".t]\nendpoint-url = "x"\n', 1, "remote 't' has no url"),
        ('["$remotes".t]\nurl = "ftp://h/x"\n', 2, "url scheme 'ftp' is not supported"),
        (
            '["$remotes".t]\nurl = "/x"\nregion = "eu"\n',
            3,
            "'region' applies to s3:// urls",
        ),
        (
            '["$remotes".t]\nurl = "/x"\njobs = 0\n',
            3,
            "'jobs' must be a positive integer",
        ),
        (
            '["$remotes".t]\nurl = "/x"\ntimeout = "5"\n',
            3,
            "'timeout' must be a positive",
        ),
        ('"$remote" = 1\n', 1, "'$remote' must be a remote name"),
        ('"$remotes" = "x"\n', 1, "'$remotes' must hold tables"),
    ],
)
def test_bad_remote_tables(tmp_path, text, line, msg):
    with pytest.raises(GagefileError) as e:
        _load(tmp_path, text)
    assert str(e.value).startswith(f"{tmp_path / 'gage.toml'}:{line}: ") or str(
        e.value
    ).startswith(f"gage.toml:{line}: "), str(e.value)
    assert msg in str(e.value)


def test_user_config(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('"$remote" = "mine"\n["$remotes".mine]\nurl = "ssh://me@box/srv"\n')
    monkeypatch.setenv("GAGE_CONFIG", str(cfg))
    spec = remote_config.resolve_remote(None, None)
    assert (spec.name, spec.url, spec.source) == ("mine", "ssh://me@box/srv", str(cfg))
    # The user's table replaces the project's table of the same name.
    gf = _load(tmp_path, '"$remote" = "mine"\n["$remotes".mine]\nurl = "/project/x"\n')
    assert remote_config.resolve_remote(None, gf).url == "ssh://me@box/srv"
    # A url or a dir is a remote as it is.
    assert remote_config.resolve_remote("/srv/share", None).url == "/srv/share"
    cfg.write_text('["$remotes".mine]\nurl = "/x"\nkey-file = "k"\n')
    with pytest.raises(GagefileError) as e:
        remote_config.resolve_remote("mine", None)
    assert (
        str(e.value)
        == f"{cfg}:3: remote 'mine': 'key-file' applies to ssh:// urls only"
    )
    cfg.write_text("remotes = 1\n")
    with pytest.raises(GagefileError, match=r":1: unknown key 'remotes'"):
        remote_spec.read_user_config()
