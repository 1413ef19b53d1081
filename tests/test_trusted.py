"""The trusted verdict (grading/trusted.py) equals the notebook's own verdict for the reference
solution and the blank template (every catalogued mistake: tests/test_labs.py): the grader's
replay of the test cells runs the same checks on the same data, outside the student's process."""

from courselib import checking
from grading import labs, trusted
from support import COURSE
from support import source as _source


def both_verdicts(lab, replacements, tmp_path, monkeypatch, nb=None):
    nb = nb or _source(lab)
    record = tmp_path / f"{len(list(tmp_path.iterdir()))}.bin"
    monkeypatch.setenv(checking.RECORD_ENV, str(record))
    notebook = labs.run_inprocess(nb, replacements)
    monkeypatch.delenv(checking.RECORD_ENV)
    verdicts, problem = trusted.replay(_source(lab), record)
    assert not problem
    return notebook, verdicts


def assert_agree(notebook, verdicts):
    assert list(verdicts) == list(notebook)
    for gid, run in notebook.items():
        assert verdicts[gid].passed == (not run.error), (gid, run.error, verdicts[gid].message)
        if run.error and not verdicts[gid].message.startswith("NotImplementedError"):
            assert verdicts[gid].message.split(":")[0] in run.error or verdicts[gid].message[:40] in run.error, \
                (gid, run.error, verdicts[gid].message)


class TrustedChecks:
    LAB: str

    def test_reference_gets_full_marks(self, tmp_path, monkeypatch):
        notebook, verdicts = both_verdicts(self.LAB, {}, tmp_path, monkeypatch)
        assert all(v.passed for v in verdicts.values()), {k: v.message for k, v in verdicts.items() if not v.passed}
        assert_agree(notebook, verdicts)

    def test_blank_gets_nothing(self, tmp_path, monkeypatch):
        student = labs.read(COURSE.student_path(self.LAB))
        notebook, verdicts = both_verdicts(self.LAB, {}, tmp_path, monkeypatch, nb=student)
        assert not any(v.passed for v in verdicts.values())
        assert_agree(notebook, verdicts)


for _lab in COURSE.labs():
    _name = "TestTrusted_" + _lab.replace("-", "_")
    globals()[_name] = type(_name, (TrustedChecks,), {"LAB": _lab})
