#!/usr/bin/env python3
"""Write small images whose tables make a reader work far beyond their size.

    make-amplified.py OUTDIR [--seeds]

Each case is OUTDIR/NAME.qcow2 or OUTDIR/NAME.vmdk, and OUTDIR/expect lists
"NAME<TAB>command<TAB>message vab must print" (command: convert or inspect;
both exit 1).  Without a work budget each takes minutes or hours.  --seeds
writes the same shapes with the smallest clusters and tables, for the fuzz
corpus.

  qcow2-shared-l2      every L1 entry points at one L2 table
  qcow2-shared-zero    distinct L2 tables whose entries all point at one
                       all-zero data cluster (terabytes of zeros to read)
  qcow2-shared-zcomp   the same with compressed clusters of zeros, two
                       descriptors of the same bytes taking turns
  qcow2-snapshot-l1    65535 snapshots sharing one large L1 table
  qcow2-refblock-thrash  refcount blocks alternate for every guest cluster
  vmdk-shared-gt       every grain directory entry points at one grain
                       table (compressed, no markers, as the issue's file)
  vmdk-shared-grain    distinct grain tables whose entries all point at one
                       compressed grain of zeros
"""
import os
import struct
import sys
import zlib

COPIED = 1 << 63
COMPRESSED = 1 << 62


def qcow2_header(cluster_bits, size, l1_size, l1_offset, reftable_offset,
                 reftable_clusters, refcount_order=4, nb_snapshots=0,
                 snapshots_offset=0):
    h = struct.pack(">IIQIIQIIQQIIQQQQIIB7x", 0x514649FB, 3, 0, 0,
                    cluster_bits, size, 0, l1_size, l1_offset,
                    reftable_offset, reftable_clusters, nb_snapshots,
                    snapshots_offset, 0, 0, 0, refcount_order, 112, 0)
    return h + struct.pack(">II", 0, 0)  # end of extensions


class File:
    """A sparse image file assembled from (offset, bytes) pieces."""

    def __init__(self):
        self.pieces = []
        self.size = 0

    def put(self, offset, data):
        self.pieces.append((offset, data))
        self.size = max(self.size, offset + len(data))

    def write(self, path, size=None):
        with open(path, "wb") as f:
            f.truncate(size or self.size)
            for off, data in self.pieces:
                f.seek(off)
                f.write(data)


def be64s(values):
    return b"".join(struct.pack(">Q", v) for v in values)


def refblock(cs, counts, order=4):
    """A refcount block: counts is {cluster index: refcount}."""
    width = (1 << order) // 8
    b = bytearray(cs)
    for i, n in counts.items():
        b[i * width:(i + 1) * width] = n.to_bytes(width, "big")
    return bytes(b)


def qcow2_shared_l2(path, cluster_bits, l1_entries):
    """L1 entries all -> one L2 table -> one data cluster of nonzero data."""
    cs = 1 << cluster_bits
    l2_entries = cs // 8
    l1_bytes = l1_entries * 8
    l1_clusters = (l1_bytes + cs - 1) // cs
    l1_at, rt_at = cs, cs * (1 + l1_clusters)
    rb_at, l2_at, data_at = rt_at + cs, rt_at + 2 * cs, rt_at + 3 * cs
    f = File()
    f.put(0, qcow2_header(cluster_bits, l1_entries * l2_entries * cs,
                          l1_entries, l1_at, rt_at, 1))
    f.put(l1_at, be64s([l2_at] * l1_entries))
    f.put(rt_at, be64s([rb_at]))
    n = data_at // cs + 1
    f.put(rb_at, refblock(cs, {i: 1 for i in range(n)}))
    f.put(l2_at, be64s([data_at] * l2_entries))
    f.put(data_at, b"\xa5" * cs)
    f.write(path)


def qcow2_shared_zero(path, cluster_bits, l2_tables, compressed=False):
    """Distinct L2 tables; every entry -> one all-zero data cluster (or two
    compressed descriptors of one deflated zero cluster, taking turns)."""
    cs = 1 << cluster_bits
    l2_entries = cs // 8
    l1_at, rt_at, rb_at = cs, 2 * cs, 3 * cs
    l2_at = 4 * cs
    data_at = l2_at + l2_tables * cs
    f = File()
    f.put(0, qcow2_header(cluster_bits, l2_tables * l2_entries * cs,
                          l2_tables, l1_at, rt_at, 1))
    f.put(l1_at, be64s([(l2_at + i * cs) | COPIED for i in range(l2_tables)]))
    f.put(rt_at, be64s([rb_at]))
    if compressed:
        c = zlib.compressobj(6, zlib.DEFLATED, -12)
        payload = c.compress(bytes(cs)) + c.flush()
        f.put(data_at, payload)
        x = 62 - (cluster_bits - 8)
        sectors = (len(payload) + 511) // 512
        # Two descriptors of the same bytes: one sector more or less.
        a = COMPRESSED | ((sectors - 1) << x) | data_at
        b = COMPRESSED | (sectors << x) | data_at
        entries = [a if i % 2 == 0 else b for i in range(l2_entries)]
    else:
        f.put(data_at, bytes(cs))
        entries = [data_at] * l2_entries
    for i in range(l2_tables):
        f.put(l2_at + i * cs, be64s(entries))
    n = data_at // cs + 1
    f.put(rb_at, refblock(cs, {i: 1 for i in range(n)}))
    f.write(path, data_at + cs)


def qcow2_snapshot_l1(path, cluster_bits, l1_entries, snapshots):
    """Snapshots all pointing at one large L1 table with no L2 tables."""
    cs = 1 << cluster_bits
    l1_bytes = l1_entries * 8
    snap_at = cs
    # 48 bytes each: the 40-byte fixed part, a one-byte id and name, padding.
    table_clusters = (snapshots * 48 + cs - 1) // cs
    l1_at = cs * (1 + table_clusters)
    l1_clusters = (l1_bytes + cs - 1) // cs
    rt_at = l1_at + l1_clusters * cs
    rb_at = rt_at + cs
    f = File()
    f.put(0, qcow2_header(cluster_bits, 1 << 20, 1, rb_at + cs, rt_at, 1,
                          nb_snapshots=snapshots, snapshots_offset=snap_at))
    one = struct.pack(">QIHHIIQII", l1_at, l1_entries, 1, 1, 0, 0, 0, 0,
                      0) + b"1s"
    one += bytes(48 - len(one))
    f.put(snap_at, one * snapshots)
    f.put(rt_at, be64s([rb_at]))
    f.put(rb_at + cs, bytes(cs))  # the active L1 (one empty entry)
    f.write(path, rb_at + 2 * cs)


def qcow2_refblock_thrash(path, cluster_bits, l2_tables):
    """64-bit refcounts, so a refcount block covers few clusters; every
    guest cluster's data alternates between two blocks' ranges."""
    cs = 1 << cluster_bits
    l2_entries = cs // 8
    per_block = cs // 8
    l1_bytes = l2_tables * 8
    l1_clusters = (l1_bytes + cs - 1) // cs
    l1_at = cs
    rt_at = l1_at + l1_clusters * cs
    l2_at = rt_at + cs
    end = l2_at + l2_tables * cs
    nclusters = end // cs + per_block
    nblocks = (nclusters + per_block - 1) // per_block
    rb_at = end
    end = rb_at + nblocks * cs
    assert nblocks * 8 <= cs
    f = File()
    f.put(0, qcow2_header(cluster_bits, l2_tables * l2_entries * cs,
                          l2_tables, l1_at, rt_at, 1, refcount_order=6))
    f.put(l1_at, be64s([l2_at + i * cs for i in range(l2_tables)]))
    f.put(rt_at, be64s([rb_at + i * cs for i in range(nblocks)]))
    # Data clusters: cluster 0 (the header) and one in the last block.
    far = (nblocks - 1) * per_block
    entries = [cs if i % 2 == 0 else far * cs for i in range(l2_entries)]
    for i in range(l2_tables):
        f.put(l2_at + i * cs, be64s(entries))
    f.write(path, max(end, (far + 1) * cs))


def vmdk_header(capacity, grain_sectors, gd_sector, overhead, flags):
    return struct.pack("<IIIQQQQIQQQB4sH", 0x564D444B, 1, flags, capacity,
                       grain_sectors, 0, 0, 512, 0, gd_sector, overhead, 0,
                       b"\n \r\n", 1 if flags & 0x10000 else 0).ljust(512,
                                                                    b"\0")


def vmdk_shared(path, gd_entries, distinct_gts):
    """Compressed grains without markers.  distinct_gts False: every GD
    entry -> one GT -> one grain.  True: one GT per GD entry, all -> one
    grain of zeros."""
    gt_sectors = 4  # 512 entries of 4 bytes
    gd_sectors = (gd_entries * 4 + 511) // 512
    gd_at = 1
    gt_at = gd_at + gd_sectors
    n_gts = gd_entries if distinct_gts else 1
    grain_at = gt_at + n_gts * gt_sectors
    capacity = gd_entries * 512 * 128
    f = File()
    f.put(0, vmdk_header(capacity, 128, gd_at, grain_at, 0x10001))
    f.put(gd_at * 512, struct.pack("<%dI" % gd_entries,
                                   *[gt_at + (i * gt_sectors if distinct_gts
                                              else 0)
                                     for i in range(gd_entries)]))
    gt = struct.pack("<512I", *([grain_at] * 512))
    for i in range(n_gts):
        f.put((gt_at + i * gt_sectors) * 512, gt)
    f.put(grain_at * 512, zlib.compress(bytes(65536), 6).ljust(512, b"\0"))
    f.write(path)


def main():
    out = sys.argv[1]
    seeds = "--seeds" in sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    expect = []

    def case(name, command, message):
        expect.append("%s\t%s\t%s\n" % (name, command, message))

    if seeds:
        qcow2_shared_l2(os.path.join(out, "qcow2-shared-l2.qcow2"), 9, 1024)
        qcow2_shared_zero(os.path.join(out, "qcow2-shared-zero.qcow2"), 9, 4)
        qcow2_shared_zero(os.path.join(out, "qcow2-shared-zcomp.qcow2"), 9, 4,
                          compressed=True)
        qcow2_snapshot_l1(os.path.join(out, "qcow2-snapshot-l1.qcow2"), 9,
                          64, 64)
        qcow2_refblock_thrash(os.path.join(out,
                                           "qcow2-refblock-thrash.qcow2"),
                              9, 8)
        vmdk_shared(os.path.join(out, "vmdk-shared-gt.vmdk"), 256, False)
        vmdk_shared(os.path.join(out, "vmdk-shared-grain.vmdk"), 16, True)
        return
    qcow2_shared_l2(os.path.join(out, "qcow2-shared-l2.qcow2"), 16, 100000)
    case("qcow2-shared-l2.qcow2", "inspect",
         "'{path}': the L1 table points at 100000 L2 tables, more than the "
         "file's 18 clusters can hold: L2 tables are shared (work budget "
         "exceeded) (offset 65536)")
    qcow2_shared_zero(os.path.join(out, "qcow2-shared-zero.qcow2"), 21, 3)
    case("qcow2-shared-zero.qcow2", "convert",
         "'{path}': more than 1073741824 bytes of zeros reread from shared "
         "clusters of a 16777216-byte file (work budget exceeded)")
    qcow2_shared_zero(os.path.join(out, "qcow2-shared-zcomp.qcow2"), 21, 3,
                      compressed=True)
    case("qcow2-shared-zcomp.qcow2", "convert",
         "'{path}': more than 1073741824 bytes of zeros reread from shared "
         "clusters of a 16777216-byte file (work budget exceeded)")
    qcow2_snapshot_l1(os.path.join(out, "qcow2-snapshot-l1.qcow2"), 16,
                      1 << 20, 65535)
    case("qcow2-snapshot-l1.qcow2", "inspect",
         "'{path}': snapshots point to more L1 and L2 tables than vab "
         "checks (64 times the file's size, at least 1 GiB): check stopped, "
         "work budget exceeded")
    qcow2_refblock_thrash(os.path.join(out, "qcow2-refblock-thrash.qcow2"),
                          18, 20)
    case("qcow2-refblock-thrash.qcow2", "inspect", "")
    vmdk_shared(os.path.join(out, "vmdk-shared-gt.vmdk"), 32768, False)
    case("vmdk-shared-gt.vmdk", "inspect",
         "'{path}': the grain directory points at 32768 grain tables, more "
         "than the file's 134144 bytes can hold: grain tables are shared "
         "(work budget exceeded)")
    vmdk_shared(os.path.join(out, "vmdk-shared-grain.vmdk"), 4096, True)
    case("vmdk-shared-grain.vmdk", "inspect",
         "'{path}': the grain tables map 2097152 grains, more than the "
         "file's 8406016 bytes can hold: grains are shared (work budget "
         "exceeded)")
    with open(os.path.join(out, "expect"), "w") as f:
        f.writelines(expect)


if __name__ == "__main__":
    main()
