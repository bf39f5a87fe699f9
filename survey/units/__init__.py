"""Units of survey work: one module per unit kind (``survey.units.base`` says what a unit is).

Importing the package imports every module in it, so each unit class registers itself
(``HEAD_UNITS`` in ``survey.units.heads``, ``MODEL_UNITS`` in ``survey.units.base``) with no list
to keep.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
