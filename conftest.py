"""Collect `topics/*.md` as pytest items, run with groktest.

Each topic file is one test item. Groktest runs the topic's examples in a
fresh Python process, configured by `[tool.groktest]` in pyproject.toml
(init: `from gage._internal.test import *`, parse types from
`gage._internal.test`). A failing topic shows groktest's report: file,
line, expected and actual output.
"""

from __future__ import annotations

import os
import shutil

import pytest

_ROOT = os.path.dirname(os.path.abspath(__file__))


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".md" and file_path.parent.name == "topics":
        return TopicFile.from_parent(parent, path=file_path)
    return None


class TopicFile(pytest.File):
    def collect(self):
        # pytest-repeat's `--count N` repeats test functions only: a topic
        # is repeated here, N items in a row (`make stress` runs each
        # topic alone N times).
        count = self.config.getoption("count", 1) or 1
        if count == 1:
            yield TopicItem.from_parent(self, name=self.path.name)
            return
        for i in range(1, count + 1):
            yield TopicItem.from_parent(self, name=f"{self.path.name}[{i}-{count}]")


class TopicItem(pytest.Item):
    def runtest(self):
        # A topic's temp dirs (`make_temp_dir`, `tempfile`) go in a dir of
        # its own, removed when it ends: the suite leaves nothing in /tmp.
        import tempfile

        from gage._internal.test import delete_temp_dir

        tmp = tempfile.mkdtemp(prefix="gage-topic-")
        os.chmod(tmp, 0o1777)  # as /tmp: a topic may run a step as another user
        before = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = tmp
        try:
            self._run()
        finally:
            if before is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = before
            try:
                delete_temp_dir(tmp)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)

    def _run(self):
        import groktest

        lines: list[str] = []
        config = groktest.load_project_config(os.path.join(_ROOT, "pyproject.toml"))
        summary = groktest.test_file(
            str(self.path),
            config,
            print_output=lambda s="", *a, **kw: lines.append(str(s)),
        )
        if summary.failed:
            raise TopicFailed(
                len(summary.failed), len(summary.tested), "\n".join(lines)
            )
        if not summary.tested:
            raise TopicFailed(0, 0, "topic has no examples")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, TopicFailed):
            failed, tested, report = excinfo.value.args
            return f"{failed} of {tested} examples failed in {self.path}\n{report}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"topic: {self.name}"


class TopicFailed(Exception):
    pass


def _hypothesis_profile() -> None:
    # On CI, hypothesis draws the same examples every run, so a submission's
    # result does not depend on the draw; locally each run explores anew.
    if os.environ.get("CI"):
        from hypothesis import settings

        settings.register_profile("ci", derandomize=True, print_blob=True)
        settings.load_profile("ci")


_hypothesis_profile()
