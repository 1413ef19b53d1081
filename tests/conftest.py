import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Jupyter's python3 kernelspec runs "python" from PATH: make it this environment's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
