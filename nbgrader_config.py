"""nbgrader configuration for the course (instructor side).

Run nbgrader from the repository root: the instructor notebooks in solutions/ are the
source; `nbgrader generate_assignment` (or `make labs`) writes the student versions to
labs/, which are committed and shown on the website.
"""
c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.assignment_id = ""

# Student notebooks: the stub left in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Execution limits when validating and autograding (seconds).
c.Execute.timeout = 120            # per cell
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120

# Students working outside JupyterHub (e.g. Colab) upload "<student id>_<lab>.ipynb";
# `nbgrader zip_collect <lab>` files them under submitted/<student id>/<lab>/.
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = r".*/(?P<student_id>[A-Za-z0-9.-]+)_(?P<file_id>[a-z0-9-]+\.ipynb)$"
c.FileNameCollectorPlugin.valid_ext = [".ipynb"]
