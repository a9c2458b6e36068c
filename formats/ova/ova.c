/* OVA writer.
 *
 * An OVA is a ustar archive of, in this order:
 *
 *   NAME.ovf         the OVF 1.0 descriptor (importers want it first)
 *   NAME.mf          "SHA256(file)= hex" for the .ovf and the disk
 *   NAME-disk1.vmdk  the disk, streamOptimized
 *
 * The .mf precedes the disk, so the disk's digest must be known before the
 * archive is written: the VMDK writer first writes the disk to a temporary
 * file next to the OVA (the one extra copy), which is read once to hash it
 * (usually from the page cache) and once more into the archive, then
 * removed.  The archive itself is written under a temporary name and
 * renamed when complete.
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
#include "formats/ova/ova.h"
#include "signing/digest.h"
#include "vab/progress.h"

#define OVA_COPY_BUFFER (1u << 20)
/* ustar's 11 octal digits: larger members need GNU base-256 headers. */
#define USTAR_MAX_MEMBER ((8ull << 30) - 1)

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
    /* scsi, and virtio, which VMware does not have. */
    d->controller_type = 6;
    d->controller_subtype = "lsilogic";
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
                    o->firmware == VAB_FW_UEFI ? "efi" : "bios");
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

static int tar_data(struct tar *t, const char *name, const void *data,
                    size_t len) {
  if (archive_write_data(t->a, data, len) != (la_ssize_t)len)
    return tar_failed(t, name);
  return 0;
}

static int tar_text(struct tar *t, const char *name, const char *text) {
  size_t len = strlen(text);
  if (tar_header(t, name, len) < 0)
    return -1;
  return tar_data(t, name, text, len);
}

/* Append the file at src as member name, reading exactly size bytes. */
static int tar_file(struct tar *t, const char *name, const char *src,
                    uint64_t size) {
  CLEANUP_CLOSE int fd = open(src, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vab_error_errno(t->ctx, VAB_E_IO, errno, "cannot open '%s'", src);
  if (tar_header(t, name, size) < 0)
    return -1;
  CLEANUP_FREE char *buf = malloc(OVA_COPY_BUFFER);
  if (buf == NULL)
    return vab_error(t->ctx, VAB_E_NOMEM, "out of memory");
  uint64_t done = 0;
  while (done < size) {
    size_t want = size - done < OVA_COPY_BUFFER ? (size_t)(size - done)
                                                 : OVA_COPY_BUFFER;
    ssize_t n = read(fd, buf, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vab_error_errno(t->ctx, VAB_E_IO, errno, "cannot read '%s'",
                             src);
    if (n == 0)
      return vab_error(t->ctx, VAB_E_IO, "'%s' shrank while it was copied",
                       src);
    if (tar_data(t, name, buf, (size_t)n) < 0)
      return -1;
    done += (uint64_t)n;
    if (vab_progress(t->ctx, VAB_PHASE_EXPORT, "ova", done, size) < 0)
      return -1;
  }
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

static int write_archive(struct vab_ctx *ctx, const char *tmp, int fd,
                         const char *base, const char *ovf, const char *mf,
                         const char *cert, const char *vmdk_name,
                         const char *vmdk_path, uint64_t vmdk_size) {
  struct tar t = {ctx, archive_write_new(), archive_time(), tmp};
  if (t.a == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  int r = -1;
  char ovf_name[512], mf_name[512], cert_name[512];
  snprintf(ovf_name, sizeof ovf_name, "%s.ovf", base);
  snprintf(mf_name, sizeof mf_name, "%s.mf", base);
  snprintf(cert_name, sizeof cert_name, "%s.cert", base);
  int fr = vmdk_size > USTAR_MAX_MEMBER ? archive_write_set_format_gnutar(t.a)
                                        : archive_write_set_format_ustar(t.a);
  /* Whole 10 KiB records are tar's convention; libarchive pads the last. */
  if (fr != ARCHIVE_OK || archive_write_add_filter_none(t.a) != ARCHIVE_OK ||
      archive_write_open_fd(t.a, fd) != ARCHIVE_OK) {
    tar_failed(&t, "the archive header");
    goto out;
  }
  /* DSP0243: the .mf and .cert right after the .ovf, then the disks. */
  if (tar_text(&t, ovf_name, ovf) < 0 || tar_text(&t, mf_name, mf) < 0 ||
      (cert != NULL && tar_text(&t, cert_name, cert) < 0) ||
      tar_file(&t, vmdk_name, vmdk_path, vmdk_size) < 0)
    goto out;
  if (archive_write_close(t.a) != ARCHIVE_OK) {
    tar_failed(&t, "the end of the archive");
    goto out;
  }
  r = 0;
out:
  archive_write_free(t.a);
  return r;
}

/* "NAME.ova" -> "NAME" (the members' base name). */
static char *member_base(const char *dst_path) {
  const char *slash = strrchr(dst_path, '/');
  const char *name = slash ? slash + 1 : dst_path;
  size_t len = strlen(name);
  if (len > 4 && strcmp(name + len - 4, ".ova") == 0)
    len -= 4;
  return strndup(name, len);
}

/* Make a rename in folder durable. */
static void sync_folder(const char *folder) {
  int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

static char *folder_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
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
  if (strcmp(opts->target, "virtualbox") == 0 &&
      opts->firmware == VAB_FW_UEFI)
    vab_log(ctx, VAB_LOG_WARNING,
            "VirtualBox imports an OVA as a BIOS machine: a disk with "
            "firmware uefi will not boot there (firmware: both does)");

  struct ovf_devices dev;
  pick_devices(opts, &dev);
  CLEANUP_FREE char *base = member_base(dst_path);
  CLEANUP_FREE char *folder = folder_of(dst_path);
  if (base == NULL || folder == NULL)
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  char vmdk_name[512];
  snprintf(vmdk_name, sizeof vmdk_name, "%s-disk1.vmdk", base);

  /* The disk, written by the VMDK writer to a temporary file. */
  char vmdk_path[4096], tmp[4096];
  snprintf(vmdk_path, sizeof vmdk_path, "%s/.%s.XXXXXX", folder, vmdk_name);
  snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", folder, base);
  int vfd = mkostemp(vmdk_path, O_CLOEXEC);
  if (vfd < 0)
    return vab_error_errno(ctx, VAB_E_IO, errno,
                           "cannot create a file in '%s'", folder);
  close(vfd);
  int fd = -1;
  int r = -1;
  bool tmp_created = false;
  char *ovf = NULL;
  char *cert = NULL;
  struct buf mf = BUF_INIT;

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
  /* The descriptor names the member, not the temporary file. */
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
  struct vab_convert_result vres;
  int cr = vab_convert(ctx, opts->disk_path, vmdk_path, &copts, &vres);
  free(options);
  if (cr < 0)
    goto out;

  struct stat st;
  if (stat(vmdk_path, &st) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot stat '%s'", vmdk_path);
    goto out;
  }
  uint64_t vmdk_size = (uint64_t)st.st_size;
  uint8_t sum[32];
  char vmdk_hex[65], ovf_hex[65];
  if (vab_sha256_file(ctx, vmdk_path, sum) < 0)
    goto out;
  vab_hex(sum, 32, vmdk_hex);

  ovf = vab_ova_descriptor(ctx, opts, vmdk_name, vmdk_size, vres.virtual_size,
                           vres.data_bytes);
  if (ovf == NULL)
    goto out;
  if (hash_text(ctx, ovf, ovf_hex) < 0)
    goto out;
  /* Exactly "SHA256(name)= hex": ESXi and vCenter refuse other spellings. */
  if (buf_printf(&mf, "SHA256(%s.ovf)= %s\nSHA256(%s)= %s\n", base, ovf_hex,
                 vmdk_name, vmdk_hex) < 0) {
    vab_error(ctx, VAB_E_NOMEM, "out of memory");
    goto out;
  }

  if (opts->make_cert != NULL) {
    char mf_name[512];
    snprintf(mf_name, sizeof mf_name, "%s.mf", base);
    if (opts->make_cert(opts->cert_opaque, ctx, mf_name, mf.data, mf.len,
                        &cert) < 0)
      goto out;
  }

  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot create a file in '%s'",
                    folder);
    goto out;
  }
  tmp_created = true;
  fchmod(fd, 0644);
  if (write_archive(ctx, tmp, fd, base, ovf, mf.data, cert, vmdk_name,
                    vmdk_path, vmdk_size) < 0)
    goto out;
  if (fsync(fd) < 0 || fstat(fd, &st) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", tmp);
    goto out;
  }
  res.file_size = (uint64_t)st.st_size;
  int closed = close(fd);
  fd = -1;
  if (closed < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot write '%s'", tmp);
    goto out;
  }
  if (vab_check_cancel(ctx) < 0)
    goto out;
  if (rename(tmp, dst_path) < 0) {
    vab_error_errno(ctx, VAB_E_IO, errno, "cannot rename '%s' to '%s'", tmp,
                    dst_path);
    goto out;
  }
  tmp_created = false;
  sync_folder(folder);
  res.virtual_size = vres.virtual_size;
  res.data_bytes = vres.data_bytes;
  res.zero_bytes = vres.zero_bytes;
  res.stored_bytes = vres.stored_bytes;
  res.seconds = vres.seconds;
  r = 0;
out:
  if (fd >= 0)
    close(fd);
  if (tmp_created)
    unlink(tmp);
  unlink(vmdk_path);
  free(ovf);
  free(cert);
  buf_release(&mf);
  if (r == 0 && result != NULL)
    *result = res;
  return r;
}
