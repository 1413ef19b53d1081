"""The course's layout, read from nbgrader's own configuration (``nbgrader_config.py``).

One object knows where things are: the source notebooks (``CourseDirectory.source_directory``,
here ``solutions/``), the released student labs (``release_directory``, ``labs/``), the course
id and each lab's mistake catalogue (``tests/lab_mistakes/<lab with _>.py``). Labs are
*discovered*: a lab is a folder ``<source>/<lab>/`` holding ``<lab>.ipynb``; nothing lists them.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from traitlets.config.loader import PyFileConfigLoader

ROOT = Path(__file__).resolve().parents[1]  # the instructors' repository this package lives in
CONFIG = "nbgrader_config.py"
# A lab's name: lower-case letters, digits and hyphens (it is a folder, a file name, a URL and part
# of an uploaded file's name "<student>_<lab>.ipynb", whose first "_" ends the student id).
LAB_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class CourseError(ValueError):
    """The course directory is not laid out as nbgrader's configuration says."""


@dataclass(frozen=True)
class Course:
    root: Path
    course_id: str
    source: str = "solutions"
    release: str = "labs"

    @classmethod
    def load(cls, root: Path | str = ROOT) -> Course:
        """The layout of the course in ``root``, from its ``nbgrader_config.py``."""
        root = Path(root).resolve()
        if not (root / CONFIG).is_file():
            raise CourseError(f"{root} has no {CONFIG}: run from the course directory (or pass --course)")
        return _load(root, (root / CONFIG).stat().st_mtime_ns)

    # -- where things are -----------------------------------------------------------------------
    def source_dir(self, lab: str | None = None) -> Path:
        return self.root / self.source / lab if lab else self.root / self.source

    def release_dir(self, lab: str | None = None) -> Path:
        return self.root / self.release / lab if lab else self.root / self.release

    def source_path(self, lab: str) -> Path:
        """The instructor's notebook of ``lab`` (solutions and hidden tests)."""
        return self.source_dir(lab) / f"{lab}.ipynb"

    def student_path(self, lab: str) -> Path:
        """The released student notebook of ``lab`` (what nbgrader generates from the source)."""
        return self.release_dir(lab) / f"{lab}.ipynb"

    def catalogue_path(self, lab: str) -> Path:
        """The lab's catalogue of typical mistakes (tests/lab_mistakes/<lab with _>.py)."""
        return self.root / "tests" / "lab_mistakes" / f"{lab.replace('-', '_')}.py"

    # -- what there is --------------------------------------------------------------------------
    def labs(self) -> list[str]:
        """Every lab: a folder of the source directory holding a notebook of the same name."""
        return sorted(p.name for p in self.source_dir().iterdir()
                      if p.is_dir() and (p / f"{p.name}.ipynb").is_file()) if self.source_dir().is_dir() else []

    def check_lab(self, lab: str) -> str:
        """``lab`` if it is a lab of this course; else a :class:`CourseError` that lists the labs."""
        if lab not in self.labs():
            raise CourseError(f"{lab!r} is not a lab of this course: the labs in {self.source_dir()} are "
                              f"{', '.join(self.labs()) or 'none'}")
        return lab

    def catalogue(self, lab: str) -> ModuleType:
        """The mistake catalogue of ``lab``, imported from its file."""
        path = self.catalogue_path(lab)
        spec = importlib.util.spec_from_file_location(f"lab_mistakes_{lab.replace('-', '_')}", path)
        if spec is None or not path.is_file():
            raise CourseError(f"{lab} has no mistake catalogue at {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def scratch(self, folder: Path, labs: list[str] | tuple[str, ...] | None = None) -> Path:
        """A scratch nbgrader course in ``folder``/course: this course's configuration and a copy
        of the source folders of ``labs`` (default: all), without a gradebook."""
        course = Path(folder) / "course"
        self_in = Course(course, self.course_id, self.source, self.release)
        self_in.source_dir().mkdir(parents=True)
        shutil.copy(self.root / CONFIG, course)
        for lab in self.labs() if labs is None else labs:
            shutil.copytree(self.source_dir(lab), self_in.source_dir(lab),
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        return course


@cache
def _load(root: Path, _mtime: int) -> Course:
    config = PyFileConfigLoader(CONFIG, path=str(root)).load_config()
    directory = config.get("CourseDirectory", {})
    # what nbgrader's own commands use when the configuration does not say (its defaults)
    return Course(root, str(directory.get("course_id", "")), str(directory.get("source_directory", "source")),
                  str(directory.get("release_directory", "release")))
