"""Suite-wide setup.

`jaxrl57 train` and `report` keep compiled programs in the user's cache folder
(`jaxrl57.cli.configure_compile_cache`); the suite must not write there, and a
cache warmed by earlier runs would hide compilation from the tests that time or
count it. Tests that want a cache point JAX at a temporary one themselves (the
`compile_cache` fixtures), which the command line leaves as set.
"""

import os

os.environ["JAXRL57_NO_COMPILE_CACHE"] = "1"
