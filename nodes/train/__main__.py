import importlib.util
import sys

MISSING = [name for name in ("torch", "PIL", "numpy", "safetensors") if importlib.util.find_spec(name) is None]
if MISSING:
    sys.exit(
        f"error: this python ({sys.executable}) lacks {', '.join(MISSING)}, which training needs. Run the same "
        f"command through the pack's environment instead (built by `python3 -m nodes.harness setup`):\n"
        f"    python3 -m nodes.harness train {' '.join(sys.argv[1:])}"
    )

from .cli import main  # noqa: E402  (after the check: the command modules import torch and Pillow)

sys.exit(main())
