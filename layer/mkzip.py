"""Writes a layer zip that is the same bytes for the same files: entries in a fixed order,
every timestamp 1980-01-01, Unix modes kept (the wrapper 0755, the library 0644).

Usage: python3 mkzip.py LAYER_DIR OUT.zip
"""

import os
import sys
import zipfile

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def main(src, out):
    names = []
    for root, _dirs, files in os.walk(src):
        for f in files:
            names.append(os.path.relpath(os.path.join(root, f), src))
    names.sort()
    tmp = out + ".tmp"
    with zipfile.ZipFile(tmp, "w") as z:
        for name in names:
            path = os.path.join(src, name)
            info = zipfile.ZipInfo(name.replace(os.sep, "/"), date_time=FIXED_TIME)
            info.create_system = 3  # Unix: Lambda keeps the modes when it unpacks into /opt
            info.external_attr = (0o100000 | (os.stat(path).st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read(), compresslevel=9)
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
