#!/usr/bin/env python3
"""Write tiny hand-made qcow2 images: one valid, and hostile variants.

    make-qcow2.py OUTDIR

Writes OUTDIR/valid.qcow2 and OUTDIR/valid.raw (what it reads as), and
one OUTDIR/NAME.qcow2 per hostile case, with OUTDIR/expect listing
"NAME<TAB>exit status<TAB>message vab must print".  The images use 512-byte
clusters so each is a few KiB: they double as the fuzz seed corpus.

Layout of valid.qcow2 (cluster = 512 bytes):
  0 header   1 L1   2 refcount table   3 refcount block   4 L2
  5 guest cluster 0 (plain)   6 guest cluster 1 (deflate, packed)
  guest cluster 2: zero flag; the rest unallocated.
"""
import os
import struct
import sys
import zlib

CLUSTER_BITS = 9
CS = 1 << CLUSTER_BITS
SIZE = 16 * 1024
COPIED = 1 << 63
COMPRESSED = 1 << 62


def guest_data():
    plain = bytes((i * 7 + 3) & 0xFF for i in range(CS))
    text = (b"vab qcow2 seed " * 40)[:CS]
    return plain, text


def deflate_raw(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


def build(**over):
    """The valid image, with header fields or tables overridden."""
    plain, text = guest_data()
    comp = over.get("compressed_bytes", deflate_raw(text))
    h = {
        "magic": 0x514649FB, "version": 3, "backing_offset": 0,
        "backing_size": 0, "cluster_bits": CLUSTER_BITS, "size": SIZE,
        "crypt": 0, "l1_size": 1, "l1_offset": 1 * CS,
        "reftable_offset": 2 * CS, "reftable_clusters": 1,
        "nb_snapshots": 0, "snapshots_offset": 0, "incompatible": 0,
        "compatible": 0, "autoclear": 0, "refcount_order": 4,
        "header_length": 112, "compression_type": 0,
    }
    for k in h:
        if k in over:
            h[k] = over[k]
    header = struct.pack(
        ">IIQIIQIIQQIIQQQQIIB7x", h["magic"], h["version"],
        h["backing_offset"], h["backing_size"], h["cluster_bits"], h["size"],
        h["crypt"], h["l1_size"], h["l1_offset"], h["reftable_offset"],
        h["reftable_clusters"], h["nb_snapshots"], h["snapshots_offset"],
        h["incompatible"], h["compatible"], h["autoclear"],
        h["refcount_order"], h["header_length"], h["compression_type"])
    header += over.get("extensions", struct.pack(">II", 0, 0))
    backing = over.get("backing_name", b"")
    if backing:
        header = header[:8] + struct.pack(">QI", len(header), len(backing)) + \
            header[20:] + backing
    cluster0 = header.ljust(CS, b"\0")

    comp_off = 6 * CS + 16            # packed: not cluster aligned
    sectors = (comp_off + len(comp) - 1) // 512 - comp_off // 512
    shift = 62 - (CLUSTER_BITS - 8)
    l2 = [0] * (CS // 8)
    l2[0] = 5 * CS | COPIED
    l2[1] = COMPRESSED | comp_off | sectors << shift
    l2[2] = 1                          # zero flag
    for i, v in over.get("l2", {}).items():
        l2[i] = v
    l1 = [4 * CS | COPIED]
    for i, v in over.get("l1", {}).items():
        l1[i] = v
    refcounts = over.get("refcounts", [1, 1, 1, 1, 1, 1, 1])
    clusters = [
        cluster0,
        b"".join(struct.pack(">Q", e) for e in l1).ljust(CS, b"\0"),
        struct.pack(">Q", 3 * CS).ljust(CS, b"\0"),
        b"".join(struct.pack(">H", r) for r in refcounts).ljust(CS, b"\0"),
        b"".join(struct.pack(">Q", e) for e in l2),
        plain,
        (b"\0" * 16 + comp).ljust(CS, b"\0"),
    ]
    image = b"".join(clusters)
    for off, data in over.get("patch", []):
        image = image[:off] + data + image[off + len(data):]
    if "truncate" in over:
        image = image[:over["truncate"]]
    return image


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    plain, text = guest_data()
    with open(os.path.join(out, "valid.qcow2"), "wb") as f:
        f.write(build())
    with open(os.path.join(out, "valid.raw"), "wb") as f:
        f.write((plain + text).ljust(SIZE, b"\0"))

    F = "'{path}': "
    cases = [
        ("truncated-header", dict(truncate=50), 1,
         F + "file too small for a qcow2 header (offset 0)"),
        ("truncated-l2", dict(truncate=4 * CS + 100), 1,
         F + "L2 table is past the end of the file (offset 2048)"),
        ("l1-past-eof", dict(l1_offset=1 << 40), 1,
         F + "L1 table is past the end of the file (offset 1099511627776)"),
        ("l1-too-small", dict(size=1 << 50), 1,
         F + "L1 table is too small for the virtual size (offset 36)"),
        ("absurd-size", dict(size=(1 << 63) + 512), 1,
         F + "absurd virtual size (offset 24)"),
        ("huge-l1", dict(l1_size=0x7FFFFFFF), 1,
         F + "L1 table is larger than 32 MiB (offset 36)"),
        ("data-past-eof", dict(l2={0: (1 << 40) | COPIED}), 1,
         F + "data cluster is past the end of the file "
         "(offset 1099511627776)"),
        ("l1-loop", dict(l1={0: 1 * CS | COPIED}), 0, None),
        ("l2-self-loop", dict(l2={3: 4 * CS | COPIED}), 0, None),
        ("bad-compressed", dict(compressed_bytes=b"\xff" * 40), 1,
         F + "compressed cluster does not decompress to a full cluster "
         "(offset 3088)"),
        ("compressed-past-eof",
         dict(l2={1: COMPRESSED | (1 << 40)}), 1,
         F + "compressed cluster is past the end of the file "
         "(offset 1099511627776)"),
        ("cluster-bits-30", dict(cluster_bits=30), 1,
         F + "cluster size out of range (512 B to 2 MiB) (offset 20)"),
        ("encrypted", dict(crypt=2), 1,
         F + "encrypted qcow2 images are not supported"),
        ("dirty", dict(incompatible=1), 1,
         F + "the qcow2 image is dirty (its refcounts may be stale); "
         "repair it with 'qemu-img check -r all'"),
        ("corrupt-bit", dict(incompatible=2), 1,
         F + "the qcow2 image is marked corrupt"),
        ("external-data", dict(incompatible=4), 1,
         F + "qcow2 images with an external data file are not supported"),
        ("extended-l2", dict(incompatible=16), 1,
         F + "qcow2 images with extended L2 entries are not supported"),
        ("unknown-feature", dict(incompatible=1 << 40), 1,
         F + "unknown qcow2 incompatible features 0x10000000000"),
        ("compression-bit-mismatch", dict(incompatible=8), 1,
         F + "compression type and its incompatible feature bit disagree "
         "(offset 104)"),
        ("refcount-order-7", dict(refcount_order=7), 1,
         F + "refcount order above 6 (offset 96)"),
        ("huge-reftable", dict(reftable_clusters=0x100000), 1,
         F + "refcount table is larger than 8 MiB (offset 56)"),
        ("version-4", dict(version=4), 1,
         F + "qcow2 version 4 is not supported"),
        ("header-length-big", dict(header_length=1024), 1,
         F + "header is larger than a cluster (offset 100)"),
        ("extension-overflow",
         dict(extensions=struct.pack(">II", 0x12345678, 0xFFFFFF00)), 1,
         F + "header extension runs past the header cluster (offset 112)"),
        ("reserved-l2", dict(l2={0: 5 * CS | COPIED | 2}), 1,
         F + "L2 entry of guest cluster 0 has reserved bits set "
         "(offset 2560)"),
        ("backing-self", dict(backing_name=b"backing-self.qcow2"), 1,
         "backing chain of '{dir}/backing-self.qcow2' is deeper than 16 "
         "images (does it loop?)"),
        ("backing-missing", dict(backing_name=b"no-such-file.img"), 1,
         "cannot open backing file '{dir}/no-such-file.img' of "
         "'{path}': No such file or directory"),
        # Confinement (docs/formats.md): host files outside the folder.
        ("backing-absolute", dict(backing_name=b"/etc/passwd"), 1,
         F[:-2] + " names backing file '/etc/passwd', which resolves to "
         "'/etc/passwd', outside the folder '{dir}' of the image"),
        ("backing-dotdot",
         dict(backing_name=b"../../../../../../../../../../etc/passwd"), 1,
         F[:-2] + " names backing file '../../../../../../../../../../etc/"
         "passwd', which resolves to '/etc/passwd', outside the folder "
         "'{dir}' of the image"),
        ("backing-device", dict(backing_name=b"/dev/zero"), 1,
         F[:-2] + " names backing file '/dev/zero', which is a character "
         "device, not a regular file"),
        ("refcount-zero", dict(refcounts=[1, 1, 1, 1, 1, 0, 1]), 0, None),
    ]
    with open(os.path.join(out, "expect"), "w") as e:
        for name, over, status, message in cases:
            with open(os.path.join(out, name + ".qcow2"), "wb") as f:
                f.write(build(**over))
            e.write("%s\t%d\t%s\n" % (name, status, message or ""))


if __name__ == "__main__":
    main()
