"""How big a submitted file may be (F006, F007), checked before anything is parsed.

Readers look these up on this module when they check (`limits.MAX_ROWS`), so that a test may
lower one for all of them.
"""

MAX_NAME_BYTES = 255  # a file name, UTF-8 (F007)
MAX_FILE_BYTES = 100 * 1024 * 1024
# A workbook's zip directory.
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_ZIP_ENTRIES = 1_000
MAX_COMPRESSION_RATIO = 100
# The ratio limit applies to entries that inflate beyond this size: a 20 kB styles.xml made of
# repeated tags may legitimately compress 150:1, a decompression bomb is big by definition.
RATIO_MIN_BYTES = 1024 * 1024
# A sheet (and a CSV's lines: MAX_ROWS).
MAX_COLUMNS = 200
MAX_ROWS = 200_000
# Rows × columns of one sheet: each cell becomes a Python object, keep a sheet under ~1 GB.
MAX_CELLS = 5_000_000
