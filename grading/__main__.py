"""python -m grading <lab>: grade a lab for a class (see grading/grade.py)."""
import sys

from .grade import main

if __name__ == "__main__":  # grading/nbgrader_run.py's forkserver imports this module again
    sys.exit(main())
