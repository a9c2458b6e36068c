/* OVA writer.
 *
 * An OVA is a ustar archive of, in this order:
 *
 *   NAME.ovf         the OVF 1.0 descriptor (importers want it first)
 *   NAME.mf          "SHA256(file)= hex" for the .ovf and the disk
 *   NAME.cert        when signing: the signature of the .mf and the cert
 *   NAME-disk1.vmdk  the disk, streamOptimized
 *
 * The .mf precedes the disk, so the disk's digest must be known before the
 * first members are final.  The disk is therefore streamed first, straight
 * into its place in the archive's temporary file, and hashed as it goes;
 * the room before it is sized in advance for the .ovf (its numbers at
 * their widest), the .mf (fixed length) and the .cert (measured on a
 * dummy .mf).  Once the disk is written, libarchive writes the archive
 * around it: its bytes for the disk member's data are skipped, since the
 * disk is already there.  The .ovf is padded with trailing white space
 * (allowed after XML's root element) so that the members before the disk
 * fill the room exactly.  No copy of the disk is made, and the archive is
 * renamed into place only when complete.
 *
 * The descriptor follows docs/formats.md: the References, Disk,
 * Network and VirtualSystem sections in that order, rasd: children in
 * alphabetical order, ovf:size the member's exact length, the capacity in
 * bytes, and for VirtualBox nothing VMware-specific. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/buf.h"
#include "common/cleanup.h"
#include "common/fsutil.h"
#include "common/io.h"
#include "core/files.h"
#include "formats/ova/ova.h"
#include "signing/digest.h"
#include "vab/progress.h"

/* ustar's 11 octal digits: larger members need GNU base-256 headers. */
#define USTAR_MAX_MEMBER ((8ull << 30) - 1)
#define TAR_BLOCK 512u
/* ustar's name field: a longer name would need extra header blocks. */
#define TAR_MAX_NAME 99u
/* Room left for a .cert larger than the one measured on the dummy .mf
 * (ECDSA signatures vary by a few bytes). */
#define CERT_SLACK 256u
/* Signings tried for a .cert that must fit a given number of blocks. */
#define CERT_ATTEMPTS 64

struct guest_os_id {
  const char *prefix;     /* of the detected guest ("debian12") */
  unsigned cim_id;        /* OperatingSystemSection ovf:id */
  const char *vmware;     /* vmw:osType */
  const char *description;
};

/* CIM ids and VMware guest ids, docs/formats.md section 3.6. */
static const struct guest_os_id guest_os_ids[] = {
    {"debian11", 96, "debian11_64Guest", "Debian 11 (64-bit)"},
    {"debian12", 96, "debian12_64Guest", "Debian 12 (64-bit)"},
    {"debian13", 96, "debian13_64Guest", "Debian 13 (64-bit)"},
    {"debian", 96, "debian12_64Guest", "Debian (64-bit)"},
    {"ubuntu", 94, "ubuntu64Guest", "Ubuntu (64-bit)"},
};
static const struct guest_os_id other_linux = {
    "", 101, "other4xLinux64Guest", "Linux (64-bit)"};

static const struct guest_os_id *find_guest_os(const char *guest) {
  if (guest == NULL)
    return &other_linux;
  for (size_t i = 0; i < sizeof guest_os_ids / sizeof guest_os_ids[0]; i++)
    if (strncmp(guest, guest_os_ids[i].prefix,
                strlen(guest_os_ids[i].prefix)) == 0)
      return &guest_os_ids[i];
  return &other_linux;
}

static int xml_escaped(struct buf *b, const char *text) {
  for (const char *p = text; *p; p++) {
    int r;
    switch (*p) {
    case '&':
      r = buf_puts(b, "&amp;");
      break;
    case '<':
      r = buf_puts(b, "&lt;");
      break;
    case '>':
      r = buf_puts(b, "&gt;");
      break;
    case '"':
      r = buf_puts(b, "&quot;");
      break;
    case '\'':
      r = buf_puts(b, "&apos;");
      break;
    default:
      r = buf_putc(b, *p);
    }
    if (r < 0)
      return -1;
  }
  return 0;
}

/* Disk controller and NIC for the target, from hardware:. */
struct ovf_devices {
  unsigned controller_type;       /* rasd:ResourceType: 5 IDE, 6 SCSI,
                                     20 SATA */
  const char *controller_subtype; /* or NULL */
  const char *controller_name;
  const char *nic_subtype;
  const char *vmdk_adapter;       /* the VMDK descriptor's adapterType */
};

static void pick_devices(const struct vab_ova_opts *o, struct ovf_devices *d) {
  bool vmware = strcmp(o->target, "vmware") == 0;
  const char *bus = o->hardware && o->hardware->disk_bus
                        ? o->hardware->disk_bus
                        : "scsi";
  const char *nic = o->hardware && o->hardware->nic_model
                        ? o->hardware->nic_model
                        : "auto";
  if (!vmware) {
    /* VirtualBox: one SATA AHCI controller and an Intel E1000. */
    d->controller_type = 20;
    d->controller_subtype = "AHCI";
    d->controller_name = "SATA Controller";
    d->nic_subtype = "E1000";
    d->vmdk_adapter = "ide";
    return;
  }
  if (strcmp(bus, "ide") == 0) {
    d->controller_type = 5;
    d->controller_subtype = NULL;
    d->controller_name = "IDE Controller 0";
    d->vmdk_adapter = "ide";
  } else if (strcmp(bus, "sata") == 0) {
    d->controller_type = 20;
    d->controller_subtype = "vmware.sata.ahci";
    d->controller_name = "SATA Controller 0";
    d->vmdk_adapter = "ide";
  } else {
    /* scsi: LSI Logic, which every guest drives.  virtio asks for a
     * paravirtual disk: VMware's is PVSCSI (the .vmx says the same); its
     * VMDK still names lsilogic, as ovftool writes it. */
    d->controller_type = 6;
    d->controller_subtype = strcmp(bus, "virtio") == 0 ? "VirtualSCSI"
                                                       : "lsilogic";
    d->controller_name = "SCSI Controller 0";
    d->vmdk_adapter = "lsilogic";
  }
  d->nic_subtype = strcmp(nic, "e1000") == 0 ? "E1000" : "VmxNet3";
}

char *vab_ova_descriptor(struct vab_ctx *ctx, const struct vab_ova_opts *o,
                         const char *vmdk_name, uint64_t vmdk_size,
                         uint64_t capacity, uint64_t populated) {
  bool vmware = strcmp(o->target, "vmware") == 0;
  if (!vmware && strcmp(o->target, "virtualbox") != 0) {
    vab_error(ctx, VAB_E_USAGE,
              "unknown OVA target '%s' (expected vmware or virtualbox)",
              o->target);
    return NULL;
  }
  struct ovf_devices dev;
  pick_devices(o, &dev);
  const struct guest_os_id *os = find_guest_os(o->guest_os);
  unsigned cpus = o->hardware && o->hardware->cpus ? o->hardware->cpus : 1;
  uint64_t mib = o->hardware && o->hardware->memory
                     ? o->hardware->memory / (1024 * 1024)
                     : 1024;
  unsigned nics = o->hardware ? o->hardware->nics : 1;

  struct buf b = BUF_INIT;
  int r = 0;
  r |= buf_puts(&b,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\"\n"
                "    xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\"\n"
                "    xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/"
                "cim-schema/2/CIM_ResourceAllocationSettingData\"\n"
                "    xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/"
                "cim-schema/2/CIM_VirtualSystemSettingData\"\n"
                "    xmlns:vmw=\"http://www.vmware.com/schema/ovf\">\n"
                "  <References>\n"
                "    <File ovf:id=\"file1\" ovf:href=\"");
  r |= xml_escaped(&b, vmdk_name);
  r |= buf_printf(&b, "\" ovf:size=\"%" PRIu64 "\"/>\n", vmdk_size);
  r |= buf_printf(
      &b,
      "  </References>\n"
      "  <DiskSection>\n"
      "    <Info>Virtual disk information</Info>\n"
      "    <Disk ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" "
      "ovf:capacity=\"%" PRIu64 "\" ovf:capacityAllocationUnits=\"byte\" "
      "ovf:populatedSize=\"%" PRIu64 "\" "
      "ovf:format=\"http://www.vmware.com/interfaces/specifications/"
      "vmdk.html#streamOptimized\"/>\n"
      "  </DiskSection>\n",
      capacity, populated);
  if (nics > 0)
    r |= buf_puts(&b, "  <NetworkSection>\n"
                      "    <Info>Logical networks</Info>\n"
                      "    <Network ovf:name=\"VM Network\">\n"
                      "      <Description>VM Network</Description>\n"
                      "    </Network>\n"
                      "  </NetworkSection>\n");
  r |= buf_puts(&b, "  <VirtualSystem ovf:id=\"");
  r |= xml_escaped(&b, o->name);
  r |= buf_puts(&b, "\">\n    <Info>A virtual machine</Info>\n    <Name>");
  r |= xml_escaped(&b, o->name);
  r |= buf_printf(&b, "</Name>\n    <OperatingSystemSection ovf:id=\"%u\"",
                  os->cim_id);
  if (vmware)
    r |= buf_printf(&b, " vmw:osType=\"%s\"", os->vmware);
  r |= buf_printf(&b, ">\n"
                      "      <Info>The guest operating system</Info>\n"
                      "      <Description>%s</Description>\n"
                      "    </OperatingSystemSection>\n",
                  os->description);
  r |= buf_puts(&b, "    <VirtualHardwareSection>\n"
                    "      <Info>Virtual hardware requirements</Info>\n"
                    "      <System>\n"
                    "        <vssd:ElementName>Virtual Hardware Family"
                    "</vssd:ElementName>\n"
                    "        <vssd:InstanceID>0</vssd:InstanceID>\n"
                    "        <vssd:VirtualSystemIdentifier>");
  r |= xml_escaped(&b, o->name);
  r |= buf_printf(&b, "</vssd:VirtualSystemIdentifier>\n"
                      "        <vssd:VirtualSystemType>%s"
                      "</vssd:VirtualSystemType>\n"
                      "      </System>\n",
                  vmware ? "vmx-13" : "virtualbox-2.2");
  /* Each Item's rasd: children in alphabetical order (the CIM schema's
   * sequence), as schema-validating importers require. */
  r |= buf_printf(&b, "      <Item>\n"
                      "        <rasd:AllocationUnits>hertz * 10^6"
                      "</rasd:AllocationUnits>\n"
                      "        <rasd:Description>Number of virtual CPUs"
                      "</rasd:Description>\n"
                      "        <rasd:ElementName>%u virtual CPU(s)"
                      "</rasd:ElementName>\n"
                      "        <rasd:InstanceID>1</rasd:InstanceID>\n"
                      "        <rasd:ResourceType>3</rasd:ResourceType>\n"
                      "        <rasd:VirtualQuantity>%u"
                      "</rasd:VirtualQuantity>\n"
                      "      </Item>\n",
                  cpus, cpus);
  r |= buf_printf(&b, "      <Item>\n"
                      "        <rasd:AllocationUnits>byte * 2^20"
                      "</rasd:AllocationUnits>\n"
                      "        <rasd:Description>Memory Size"
                      "</rasd:Description>\n"
                      "        <rasd:ElementName>%" PRIu64 " MB of memory"
                      "</rasd:ElementName>\n"
                      "        <rasd:InstanceID>2</rasd:InstanceID>\n"
                      "        <rasd:ResourceType>4</rasd:ResourceType>\n"
                      "        <rasd:VirtualQuantity>%" PRIu64
                      "</rasd:VirtualQuantity>\n"
                      "      </Item>\n",
                  mib, mib);
  r |= buf_printf(&b, "      <Item>\n"
                      "        <rasd:Address>0</rasd:Address>\n"
                      "        <rasd:ElementName>%s</rasd:ElementName>\n"
                      "        <rasd:InstanceID>3</rasd:InstanceID>\n",
                  dev.controller_name);
  if (dev.controller_subtype != NULL)
    r |= buf_printf(&b, "        <rasd:ResourceSubType>%s"
                        "</rasd:ResourceSubType>\n",
                    dev.controller_subtype);
  r |= buf_printf(&b, "        <rasd:ResourceType>%u</rasd:ResourceType>\n"
                      "      </Item>\n",
                  dev.controller_type);
  r |= buf_puts(&b, "      <Item>\n"
                    "        <rasd:AddressOnParent>0</rasd:AddressOnParent>\n"
                    "        <rasd:ElementName>Hard Disk 1</rasd:ElementName>\n"
                    "        <rasd:HostResource>ovf:/disk/vmdisk1"
                    "</rasd:HostResource>\n"
                    "        <rasd:InstanceID>4</rasd:InstanceID>\n"
                    "        <rasd:Parent>3</rasd:Parent>\n"
                    "        <rasd:ResourceType>17</rasd:ResourceType>\n"
                    "      </Item>\n");
  for (unsigned i = 0; i < nics; i++)
    r |= buf_printf(&b, "      <Item>\n"
                        "        <rasd:AddressOnParent>%u"
                        "</rasd:AddressOnParent>\n"
                        "        <rasd:AutomaticAllocation>true"
                        "</rasd:AutomaticAllocation>\n"
                        "        <rasd:Connection>VM Network"
                        "</rasd:Connection>\n"
                        "        <rasd:ElementName>Ethernet %u"
                        "</rasd:ElementName>\n"
                        "        <rasd:InstanceID>%u</rasd:InstanceID>\n"
                        "        <rasd:ResourceSubType>%s"
                        "</rasd:ResourceSubType>\n"
                        "        <rasd:ResourceType>10</rasd:ResourceType>\n"
                        "      </Item>\n",
                    7 + i, i + 1, 5 + i, dev.nic_subtype);
  /* VMware boots EFI when told; VirtualBox ignores vmw: and boots BIOS. */
  if (vmware)
    r |= buf_printf(&b, "      <vmw:Config ovf:required=\"false\" "
                        "vmw:key=\"firmware\" vmw:value=\"%s\"/>\n",
                    o->hardware && o->hardware->uefi_only ? "efi" : "bios");
  r |= buf_puts(&b, "    </VirtualHardwareSection>\n"
                    "  </VirtualSystem>\n"
                    "</Envelope>\n");
  if (r != 0) {
    buf_release(&b);
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    return NULL;
  }
  return buf_detach(&b);
}

static int hash_text(struct vab_ctx *ctx, const char *text, char hex[65]) {
  struct vab_sha256 *h = vab_sha256_new(ctx);
  uint8_t sum[32];
  if (h == NULL)
    return -1;
  if (vab_sha256_update(h, text, strlen(text)) < 0) {
    vab_sha256_free(h);
    return -1;
  }
  if (vab_sha256_final(h, sum) < 0)
    return -1;
  vab_hex(sum, 32, hex);
  return 0;
}

struct tar {
  struct vab_ctx *ctx;
  struct archive *a;
  time_t mtime;
  const char *path;
};

static int tar_failed(struct tar *t, const char *what) {
  return vab_error(t->ctx, VAB_E_IO, "cannot write %s to '%s': %s", what,
                   t->path, archive_error_string(t->a));
}

static int tar_header(struct tar *t, const char *name, uint64_t size) {
  struct archive_entry *e = archive_entry_new();
  if (e == NULL)
    return vab_error(t->ctx, VAB_E_NOMEM, "out of memory");
  archive_entry_set_pathname(e, name);
  archive_entry_set_size(e, (la_int64_t)size);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  archive_entry_set_uname(e, "root");
  archive_entry_set_gname(e, "root");
  archive_entry_set_mtime(e, t->mtime, 0);
  int r = archive_write_header(t->a, e);
  archive_entry_free(e);
  if (r != ARCHIVE_OK)
    return tar_failed(t, name);
  return 0;
}

/* SOURCE_DATE_EPOCH, for reproducible archives; else now. */
static time_t archive_time(void) {
  const char *epoch = getenv("SOURCE_DATE_EPOCH");
  if (epoch != NULL && *epoch != '\0') {
    char *end;
    errno = 0;
    long long v = strtoll(epoch, &end, 10);
    if (errno == 0 && *end == '\0' && v >= 0)
      return (time_t)v;
  }
  return time(NULL);
}

/* "NAME.ova" -> "NAME" (the members' base name). */
static char *member_base(const char *dst_path) {
  const char *name = path_base_name(dst_path);
  size_t len = strlen(name);
  if (len > 4 && strcmp(name + len - 4, ".ova") == 0)
    len -= 4;
  return strndup(name, len);
}

static uint64_t round_block(uint64_t n) {
  return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* The disk member's data, streamed by the VMDK writer to its final place
 * in the archive and hashed on the way. */
struct disk_stream {
  int fd;
  uint64_t start;            /* archive offset of the member's data */
  struct vab_sha256 *hash;
  const char *path;          /* the archive, for errors */
};

static int disk_stream_write(struct vab_sink *s, const void *buf,
                             size_t len) {
  struct disk_stream *d = s->opaque;
  if (pwrite_full(d->fd, buf, len, d->start + s->offset) < 0)
    return vab_error_errno(s->ctx, VAB_E_IO, errno, "cannot write '%s'",
                           d->path);
  if (vab_sha256_update(d->hash, buf, len) < 0)
    return -1;
  s->offset += len;
  return 0;
}

/* libarchive's output: written in place in the archive file, except the
 * disk member's data, which is there already (libarchive hands zeros for
 * it, since the data is never given to it). */
struct archive_out {
  int fd;
  uint64_t at;               /* archive offset of the next byte */
  uint64_t skip_from, skip_to;
  int error;                 /* errno of a failed write */
};

static la_ssize_t archive_out_write(struct archive *a, void *opaque,
                                    const void *buf, size_t len) {
  struct archive_out *o = opaque;
  const uint8_t *p = buf;
  uint64_t from = o->at, to = o->at + len;
  /* The parts of [from, to) outside [skip_from, skip_to). */
  uint64_t parts[2][2] = {{from, to < o->skip_from ? to : o->skip_from},
                          {from > o->skip_to ? from : o->skip_to, to}};
  for (int i = 0; i < 2; i++) {
    uint64_t at = parts[i][0];
    if (at < parts[i][1] &&
        pwrite_full(o->fd, p + (at - from), (size_t)(parts[i][1] - at),
                    at) < 0) {
      o->error = errno;
      archive_set_error(a, errno, "%s", strerror(errno));
      return -1;
    }
  }
  o->at = to;
  return (la_ssize_t)len;
}

static int tar_text(struct tar *t, const char *name, const char *text,
                    size_t len) {
  if (tar_header(t, name, len) < 0)
    return -1;
  if (archive_write_data(t->a, text, len) != (la_ssize_t)len)
    return tar_failed(t, name);
  return 0;
}

/* The archive around the disk, which is already at disk_start. */
static int write_archive(struct vab_ctx *ctx, const char *tmp, int fd,
                         const char *base, const char *ovf, size_t ovf_len,
                         const char *mf, const char *cert,
                         const char *vmdk_name, uint64_t disk_start,
                         uint64_t vmdk_size) {
  struct tar t = {ctx, archive_write_new(), archive_time(), tmp};
  if (t.a == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  struct archive_out out = {fd, 0, disk_start, disk_start + vmdk_size, 0};
  int r = -1;
  char ovf_name[512], mf_name[512], cert_name[512];
  snprintf(ovf_name, sizeof ovf_name, "%s.ovf", base);
  snprintf(mf_name, sizeof mf_name, "%s.mf", base);
  snprintf(cert_name, sizeof cert_name, "%s.cert", base);
  int fr = vmdk_size > USTAR_MAX_MEMBER ? archive_write_set_format_gnutar(t.a)
                                        : archive_write_set_format_ustar(t.a);
  /* Whole 10 KiB records are tar's convention; libarchive pads the last. */
  if (fr != ARCHIVE_OK || archive_write_add_filter_none(t.a) != ARCHIVE_OK ||
      archive_write_open2(t.a, &out, NULL, archive_out_write, NULL, NULL) !=
          ARCHIVE_OK) {
    tar_failed(&t, "the archive header");
    goto out;
  }
  /* DSP0243: the .mf and .cert right after the .ovf, then the disks. */
  if (tar_text(&t, ovf_name, ovf, ovf_len) < 0 ||
      tar_text(&t, mf_name, mf, strlen(mf)) < 0 ||
      (cert != NULL && tar_text(&t, cert_name, cert, strlen(cert)) < 0) ||
      tar_header(&t, vmdk_name, vmdk_size) < 0)
    goto out;
  /* The room was sized so that the disk's header ends where it starts. */
  if ((uint64_t)archive_filter_bytes(t.a, 0) != disk_start) {
    vab_error(ctx, VAB_E_INTERNAL,
              "OVA members before the disk take %lld bytes, not %llu",
              (long long)archive_filter_bytes(t.a, 0),
              (unsigned long long)disk_start);
    goto out;
  }
  if (archive_write_finish_entry(t.a) != ARCHIVE_OK ||
      archive_write_close(t.a) != ARCHIVE_OK) {
    tar_failed(&t, "the end of the archive");
    goto out;
  }
  r = 0;
out:
  if (r < 0 && out.error != 0)
    vab_error_errno(ctx, VAB_E_IO, out.error, "cannot write '%s'", tmp);
  archive_write_free(t.a);
  return r;
}

/* The .mf: exactly "SHA256(name)= hex", since ESXi and vCenter refuse other
 * spellings.  Its length does not depend on the digests. */
static int make_mf(struct vab_ctx *ctx, struct buf *mf, const char *base,
                   const char *ovf_hex, const char *vmdk_name,
                   const char *vmdk_hex) {
  buf_release(mf);
  if (buf_printf(mf, "SHA256(%s.ovf)= %s\nSHA256(%s)= %s\n", base, ovf_hex,
                 vmdk_name, vmdk_hex) < 0)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  return 0;
}

/* Bytes the members before the disk may take, headers included, and the
 * part of it kept for the .ovf's data. */
struct ova_room {
  uint64_t ovf;      /* the .ovf's data, a multiple of the block size */
  uint64_t cert;     /* the .cert's data, likewise; 0 when not signing */
  uint64_t total;    /* where the disk's data starts */
};

static int size_room(struct vab_ctx *ctx, const struct vab_ova_opts *opts,
                     const char *base, const char *vmdk_name,
                     struct ova_room *room) {
  /* The descriptor with every number at its widest. */
  char *widest = vab_ova_descriptor(ctx, opts, vmdk_name, UINT64_MAX,
                                    UINT64_MAX, UINT64_MAX);
  if (widest == NULL)
    return -1;
  room->ovf = round_block(strlen(widest));
  free(widest);
  char zeros[65];
  memset(zeros, '0', 64);
  zeros[64] = '\0';
  struct buf mf = BUF_INIT;
  if (make_mf(ctx, &mf, base, zeros, vmdk_name, zeros) < 0)
    return -1;
  uint64_t mf_len = mf.len;
  room->cert = 0;
  if (opts->make_cert != NULL) {
    char mf_name[512];
    char *cert = NULL;
    snprintf(mf_name, sizeof mf_name, "%s.mf", base);
    int r = opts->make_cert(opts->cert_opaque, ctx, mf_name, mf.data, mf.len,
                            &cert);
    if (r == 0 && cert != NULL)
      room->cert = round_block(strlen(cert) + CERT_SLACK);
    free(cert);
    if (r < 0) {
      buf_release(&mf);
      return -1;
    }
  }
  buf_release(&mf);
  room->total = TAR_BLOCK + room->ovf + TAR_BLOCK + round_block(mf_len) +
                (room->cert ? TAR_BLOCK + room->cert : 0) + TAR_BLOCK;
  return 0;
}

int vab_ova_write(struct vab_ctx *ctx, const struct vab_ova_opts *opts,
                  const char *dst_path, struct vab_convert_result *result) {
  struct vab_convert_result res;
  memset(&res, 0, sizeof res);
  if (strcmp(opts->target, "vmware") != 0 &&
      strcmp(opts->target, "virtualbox") != 0)
    return vab_error(ctx, VAB_E_USAGE,
                     "unknown OVA target '%s' (expected vmware or virtualbox)",
                     opts->target);
  for (size_t i = 0; i < opts->n_vmdk_options; i++) {
    const struct vab_option *o = &opts->vmdk_options[i];
    if (strcmp(o->key, "subformat") == 0 &&
        strcmp(o->value, "streamOptimized") != 0)
      return vab_error(ctx, VAB_E_USAGE,
                       "an OVA holds a streamOptimized VMDK, not %s",
                       o->value);
  }
  if (strcmp(opts->target, "virtualbox") == 0 && opts->hardware &&
      opts->hardware->uefi_only)
    vab_log(ctx, VAB_LOG_WARNING,
            "VirtualBox imports an OVA as a BIOS machine: a disk with "
            "firmware uefi will not boot there (firmware: both does)");

  struct ovf_devices dev;
  pick_devices(opts, &dev);
  CLEANUP_FREE char *base = member_base(dst_path);
  if (base == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char vmdk_name[512];
  snprintf(vmdk_name, sizeof vmdk_name, "%s-disk1.vmdk", base);
  if (strlen(vmdk_name) > TAR_MAX_NAME)
    return vab_error(ctx, VAB_E_USAGE,
                     "OVA member name '%s' is longer than ustar's %u bytes: "
                     "choose a shorter output name",
                     vmdk_name, TAR_MAX_NAME);
  struct ova_room room;
  if (size_room(ctx, opts, base, vmdk_name, &room) < 0)
    return -1;

  CLEANUP_FREE char *tmp = NULL;
  int fd = create_temp_beside(dst_path, &tmp);
  if (fd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create a file next to '%s'", dst_path);
  if (fchmod(fd, 0644) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return vab_error_errno(ctx, VAB_E_IO, e, "cannot set the mode of '%s'",
                           tmp);
  }
  int r = -1;
  bool tmp_gone = false;
  char *ovf = NULL;
  char *cert = NULL;
  struct buf mf = BUF_INIT;
  struct disk_stream disk = {fd, room.total, vab_sha256_new(ctx), tmp};
  if (disk.hash == NULL)
    goto out;

  /* The disk, streamed into its place. */
  size_t n_options = opts->n_vmdk_options + 3;
  struct vab_option *options = calloc(n_options, sizeof *options);
  if (options == NULL) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }
  options[0].key = "subformat";
  options[0].value = "streamOptimized";
  options[1].key = "adapter_type";
  options[1].value = dev.vmdk_adapter;
  options[2].key = "extent_file";
  options[2].value = vmdk_name;
  for (size_t i = 0; i < opts->n_vmdk_options; i++)
    options[i + 3] = opts->vmdk_options[i];
  struct vab_convert_opts copts = {
      .src_format = opts->disk_format,
      .dst_format = "vmdk",
      .options = options,
      .n_options = n_options,
      .threads = opts->threads,
  };
  struct vab_sink sink = {.write = disk_stream_write, .ctx = ctx,
                          .opaque = &disk, .fd = -1};
  struct vab_convert_result vres;
  int cr = vab_convert_to_sink(ctx, opts->disk_path, vmdk_name, &sink,
                               &copts, &vres);
  free(options);
  if (cr < 0)
    goto out;
  uint64_t vmdk_size = sink.offset;
  uint8_t sum[32];
  char vmdk_hex[65], ovf_hex[65];
  struct vab_sha256 *hash = disk.hash;
  disk.hash = NULL;
  if (vab_sha256_final(hash, sum) < 0)
    goto out;
  vab_hex(sum, 32, vmdk_hex);

  ovf = vab_ova_descriptor(ctx, opts, vmdk_name, vmdk_size, vres.virtual_size,
                           vres.data_bytes);
  if (ovf == NULL)
    goto out;
  size_t ovf_text_len = strlen(ovf);
  if (ovf_text_len > room.ovf) {
    vab_error(ctx, VAB_E_INTERNAL, "the OVA's .ovf outgrew its room");
    goto out;
  }
  /* The .ovf fills what the .cert leaves of the room: first assuming the
   * .cert takes all of its room, then, if it needs fewer blocks, with the
   * .ovf grown by the difference.  ECDSA signatures are randomized and
   * vary by a few bytes, so a .cert near a block boundary is signed again
   * until its length fits the blocks that the .ovf left it. */
  uint64_t cert_data = room.cert;
  size_t ovf_len = 0;
  bool fits = false;
  for (int round = 0; !fits && round < 2; round++) {
    ovf_len = (size_t)(room.ovf + room.cert - cert_data);
    char *padded = realloc(ovf, ovf_len + 1);
    if (padded == NULL) {
      vab_error(ctx, VAB_E_NOMEM, "out of memory");
      goto out;
    }
    ovf = padded;
    memset(ovf + ovf_text_len, ' ', ovf_len - ovf_text_len);
    if (ovf_len > ovf_text_len)
      ovf[ovf_len - 1] = '\n';
    ovf[ovf_len] = '\0';
    if (hash_text(ctx, ovf, ovf_hex) < 0 ||
        make_mf(ctx, &mf, base, ovf_hex, vmdk_name, vmdk_hex) < 0)
      goto out;
    /* No room: the signer said, when measured, that it makes no .cert. */
    if (room.cert == 0)
      break;
    char mf_name[512];
    snprintf(mf_name, sizeof mf_name, "%s.mf", base);
    uint64_t need = 0;
    for (int attempt = 0; attempt < CERT_ATTEMPTS; attempt++) {
      free(cert);
      cert = NULL;
      if (opts->make_cert(opts->cert_opaque, ctx, mf_name, mf.data, mf.len,
                          &cert) < 0)
        goto out;
      if (cert == NULL) {
        vab_error(ctx, VAB_E_INTERNAL, "the signer made no .cert this time");
        goto out;
      }
      need = round_block(strlen(cert));
      fits = need == cert_data;
      if (fits || round == 0)
        break;
    }
    if (need > room.cert)
      break;
    cert_data = need;
  }
  if (room.cert != 0 && !fits) {
    vab_error(ctx, VAB_E_INTERNAL, "the OVA's .cert does not fit its room");
    goto out;
  }

  if (write_archive(ctx, tmp, fd, base, ovf, ovf_len, mf.data, cert,
                    vmdk_name, room.total, vmdk_size) < 0)
    goto out;
  if (vab_check_cancel(ctx) < 0)
    goto out;
  int committed = vab_commit_temp(ctx, fd, tmp, dst_path, &res.file_size);
  fd = -1;
  tmp_gone = true;  /* renamed, or unlinked on failure */
  if (committed < 0)
    goto out;
  res.virtual_size = vres.virtual_size;
  res.data_bytes = vres.data_bytes;
  res.zero_bytes = vres.zero_bytes;
  res.stored_bytes = vres.stored_bytes;
  res.seconds = vres.seconds;
  r = 0;
out:
  if (fd >= 0)
    close(fd);
  if (r < 0 && !tmp_gone)
    unlink(tmp);
  vab_sha256_free(disk.hash);
  free(ovf);
  free(cert);
  buf_release(&mf);
  if (r == 0 && result != NULL)
    *result = res;
  return r;
}
