"""Collection settings for the doctests under src/: the PyTorch adapter's examples need
torch, an optional extra (its tests in tests/ skip themselves without it)."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["src/flatminima/torch_adapter.py"]
