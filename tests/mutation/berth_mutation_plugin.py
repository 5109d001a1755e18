# Copyright (c) berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest plugin for mutation runs (``-p berth_mutation_plugin``): hypothesis without luck.

A mutant's fate must not depend on the random examples of one run or on the
failing examples an earlier mutant left in a database: every property test
draws the same examples for every mutant, and nothing is saved between them.
Property tests run at most MUTATION_MAX_EXAMPLES examples (default 25) plus
their pinned @example cases, so that thousands of mutants fit in one run.
"""

import os

from hypothesis import settings

MAX_EXAMPLES = int(os.environ.get("MUTATION_MAX_EXAMPLES", "25"))

settings.register_profile("berth-mutation", derandomize=True, database=None, print_blob=False,
                          max_examples=MAX_EXAMPLES)
settings.load_profile("berth-mutation")


def pytest_collection_modifyitems(items):
    # A test's own @settings(max_examples=...) outranks the profile: cap it too.
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None and own.max_examples > MAX_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(own, max_examples=MAX_EXAMPLES)  # pylint: disable=protected-access
