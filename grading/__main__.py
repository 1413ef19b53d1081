"""python -m grading <lab>: grade a lab for a class (see grading/grade.py)."""
import sys

from .grade import main

sys.exit(main())
