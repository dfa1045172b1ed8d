#!/usr/bin/env python3
"""Takes the dynamic loader (`ld-linux-*.so.*`) out of a shared library's DT_NEEDED entries, in
place: unneed-loader.py LIBRARY...

Why: a preloaded library's needed libraries enter the process's symbol search order right after
the program's own, so a library that names the loader puts it before most of the program's
libraries instead of last, and every symbol lookup at load for a symbol of those libraries looks
through the loader first (curl with its 30 libraries: about 9,000 lookups, 210,000 instructions
a process). The loader is in every process's search order anyway: the symbols the library takes
from it (`__tls_get_addr`, `_r_debug`) are found there at load, and glibc finds the objects that
the version requirements name among the loaded ones. The host's linker is kept from recording
the entry by build.rs; cargo-zigbuild's linker, which builds the layer, is not.

Each entry after the one taken out moves up one place and the array ends with one more DT_NULL,
so no other byte of the file changes. ELF64, little-endian (x86_64, aarch64). A library that
does not name the loader is left as it is."""

import struct
import sys

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5


def unneed(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            sys.exit("unneed-loader: %s is not a little-endian ELF64 file" % path)
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                "<IIQQQQ", data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            sys.exit("unneed-loader: %s has no dynamic section" % path)
        entries = [struct.unpack_from("<qQ", data, dynamic[0] + 16 * i)
                   for i in range(dynamic[1] // 16)]
        strtab = next((v for t, v in entries if t == DT_STRTAB), None)
        offset = next((o + strtab - a for a, o, n in loads if a <= strtab < a + n), None)
        if offset is None:
            sys.exit("unneed-loader: %s: its string table is in no loaded segment" % path)

        def name(value):
            start = offset + value
            return bytes(data[start:data.index(b"\0", start)])

        kept = [(t, v) for t, v in entries
                if not (t == DT_NEEDED and name(v).startswith(b"ld-linux"))]
        if len(kept) == len(entries):
            return
        kept += [(DT_NULL, 0)] * (len(entries) - len(kept))
        for i, (t, v) in enumerate(kept):
            struct.pack_into("<qQ", data, dynamic[0] + 16 * i, t, v)
        f.seek(0)
        f.write(data)


if __name__ == "__main__":
    for library in sys.argv[1:]:
        unneed(library)
