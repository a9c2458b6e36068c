/* libvirt domain XML, VMware .vmx and Hyper-V notes from `hardware:`. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/buf.h"
#include "builder/vmdef.h"

#define MIB (1024ull * 1024)

/* Text for an XML attribute or element. */
static int put_xml_text(struct buf *b, const char *s) {
  int r = 0;
  for (; *s && r == 0; s++) {
    switch (*s) {
    case '&': r = buf_puts(b, "&amp;"); break;
    case '<': r = buf_puts(b, "&lt;"); break;
    case '>': r = buf_puts(b, "&gt;"); break;
    case '\'': r = buf_puts(b, "&apos;"); break;
    case '"': r = buf_puts(b, "&quot;"); break;
    default: r = buf_putc(b, *s);
    }
  }
  return r;
}

static int finish(struct vab_ctx *ctx, struct buf *b, int r, char **text) {
  if (r != 0) {
    buf_release(b);
    return vab_error(ctx, VAB_E_NOMEM, "out of memory");
  }
  *text = buf_detach(b);
  return 0;
}

/* The NIC model a hypervisor should emulate: `auto` picks each one's
 * best paravirtual device. */
static const char *nic_model(const struct vab_template *t,
                             const char *auto_model) {
  const char *m = t->hardware.nic_model;
  return m == NULL || strcmp(m, "auto") == 0 ? auto_model : m;
}

int vab_vmdef_libvirt(struct vab_ctx *ctx, const struct vab_vmdef_input *in,
                      char **text) {
  const struct vab_template *t = in->t;
  const struct vab_hardware *hw = &t->hardware;
  const char *bus = hw->disk_bus ? hw->disk_bus : "scsi";
  struct buf b = BUF_INIT;
  int r = buf_puts(&b, "<domain type='kvm'>\n  <name>");
  r |= put_xml_text(&b, t->name);
  r |= buf_puts(&b, "</name>\n");
  if (t->description != NULL) {
    r |= buf_puts(&b, "  <description>");
    r |= put_xml_text(&b, t->description);
    r |= buf_puts(&b, "</description>\n");
  }
  r |= buf_printf(&b,
                  "  <memory unit='KiB'>%llu</memory>\n"
                  "  <vcpu>%u</vcpu>\n",
                  (unsigned long long)(hw->memory / 1024), hw->cpus);
  /* UEFI through libvirt's firmware auto-selection; BIOS (also for
   * `both`, which boots either way) is libvirt's default. */
  r |= buf_printf(&b, "  <os%s>\n", t->disk.firmware == VAB_FW_UEFI
                                        ? " firmware='efi'" : "");
  r |= buf_puts(&b,
                "    <type arch='x86_64'>hvm</type>\n"
                "    <boot dev='hd'/>\n"
                "  </os>\n"
                "  <features>\n    <acpi/>\n    <apic/>\n  </features>\n"
                "  <clock offset='utc'/>\n"
                "  <on_poweroff>destroy</on_poweroff>\n"
                "  <on_reboot>restart</on_reboot>\n"
                "  <on_crash>destroy</on_crash>\n"
                "  <devices>\n"
                "    <disk type='file' device='disk'>\n");
  r |= buf_printf(&b, "      <driver name='qemu' type='%s' discard='unmap'/>\n",
                  in->disk_format);
  r |= buf_puts(&b, "      <source file='");
  r |= put_xml_text(&b, in->disk_path);
  r |= buf_puts(&b, "'/>\n");
  if (strcmp(bus, "virtio") == 0)
    r |= buf_puts(&b, "      <target dev='vda' bus='virtio'/>\n");
  else if (strcmp(bus, "ide") == 0)
    r |= buf_puts(&b, "      <target dev='hda' bus='ide'/>\n");
  else
    r |= buf_printf(&b, "      <target dev='sda' bus='%s'/>\n",
                    strcmp(bus, "sata") == 0 ? "sata" : "scsi");
  r |= buf_puts(&b, "    </disk>\n");
  if (strcmp(bus, "scsi") == 0)
    r |= buf_puts(&b, "    <controller type='scsi' model='virtio-scsi'/>\n");
  for (unsigned i = 0; i < hw->nics; i++)
    r |= buf_printf(&b,
                    "    <interface type='network'>\n"
                    "      <source network='default'/>\n"
                    "      <model type='%s'/>\n"
                    "    </interface>\n",
                    nic_model(t, "virtio"));
  /* GRUB and the kernel talk on ttyS0 (layout): `virsh console` works. */
  r |= buf_puts(&b,
                "    <serial type='pty'>\n      <target port='0'/>\n"
                "    </serial>\n"
                "    <console type='pty'>\n"
                "      <target type='serial' port='0'/>\n"
                "    </console>\n"
                "    <rng model='virtio'>\n"
                "      <backend model='random'>/dev/urandom</backend>\n"
                "    </rng>\n"
                "  </devices>\n"
                "</domain>\n");
  return finish(ctx, &b, r, text);
}

/* Workstation's guestOS names: "debian12-64".  Anything unknown is a
 * recent 64-bit Linux. */
static const char *vmx_guest_os(const char *guest, char *buf, size_t len) {
  if (guest != NULL && strncmp(guest, "debian", 6) == 0 && guest[6] != '\0') {
    snprintf(buf, len, "debian%s-64", guest + 6);
    return buf;
  }
  return "other5xlinux-64";
}

int vab_vmdef_vmx(struct vab_ctx *ctx, const struct vab_vmdef_input *in,
                  char **text) {
  const struct vab_template *t = in->t;
  const struct vab_hardware *hw = &t->hardware;
  const char *bus = hw->disk_bus ? hw->disk_bus : "scsi";
  char os[32];
  struct buf b = BUF_INIT;
  /* 16 is Workstation 15.x: new enough for UEFI and vmxnet3, old enough
   * for most installs. */
  unsigned hwv = in->hwversion ? in->hwversion : 16;
  int r = buf_printf(&b,
                     ".encoding = \"UTF-8\"\n"
                     "config.version = \"8\"\n"
                     "virtualHW.version = \"%u\"\n"
                     "displayName = \"%s\"\n"
                     "guestOS = \"%s\"\n"
                     "memsize = \"%llu\"\n"
                     "numvcpus = \"%u\"\n",
                     hwv, t->name, vmx_guest_os(in->guest_os, os, sizeof os),
                     (unsigned long long)(hw->memory / MIB), hw->cpus);
  if (t->disk.firmware == VAB_FW_UEFI)
    r |= buf_puts(&b, "firmware = \"efi\"\n");
  const char *file = path_base_name(in->disk_path);
  if (strcmp(bus, "sata") == 0) {
    r |= buf_printf(&b,
                    "sata0.present = \"TRUE\"\n"
                    "sata0:0.present = \"TRUE\"\n"
                    "sata0:0.fileName = \"%s\"\n", file);
  } else if (strcmp(bus, "ide") == 0) {
    r |= buf_printf(&b,
                    "ide0:0.present = \"TRUE\"\n"
                    "ide0:0.fileName = \"%s\"\n", file);
  } else {
    /* virtio has no VMware device: paravirtual SCSI is the closest. */
    r |= buf_printf(&b,
                    "scsi0.present = \"TRUE\"\n"
                    "scsi0.virtualDev = \"%s\"\n"
                    "scsi0:0.present = \"TRUE\"\n"
                    "scsi0:0.fileName = \"%s\"\n",
                    strcmp(bus, "virtio") == 0 ? "pvscsi" : "lsilogic", file);
  }
  const char *nic = nic_model(t, "vmxnet3");
  if (strcmp(nic, "virtio") == 0)
    nic = "vmxnet3";
  for (unsigned i = 0; i < hw->nics; i++)
    r |= buf_printf(&b,
                    "ethernet%u.present = \"TRUE\"\n"
                    "ethernet%u.connectionType = \"nat\"\n"
                    "ethernet%u.virtualDev = \"%s\"\n"
                    "ethernet%u.addressType = \"generated\"\n",
                    i, i, i, nic, i);
  return finish(ctx, &b, r, text);
}

int vab_vmdef_hyperv(struct vab_ctx *ctx, const struct vab_vmdef_input *in,
                     char **text) {
  const struct vab_template *t = in->t;
  const struct vab_hardware *hw = &t->hardware;
  bool vhdx = strcmp(in->disk_format, "vhdx") == 0;
  /* Generation 2 boots UEFI and only from VHDX; generation 1 boots BIOS
   * from VHD or VHDX. */
  bool gen2 = vhdx && t->disk.firmware != VAB_FW_BIOS;
  const char *file = path_base_name(in->disk_path);
  struct buf b = BUF_INIT;
  int r = buf_printf(&b,
                     "# %s %s on Hyper-V\n\n"
                     "Disk: `%s` (%s). Create the VM as **generation %d**",
                     t->name, t->version, file, in->disk_format, gen2 ? 2 : 1);
  if (gen2)
    r |= buf_puts(&b,
                  " (UEFI). vab installs GRUB unsigned, so turn Secure Boot "
                  "off (or use the Microsoft UEFI Certificate Authority "
                  "template once the guest has a signed shim).\n\n");
  else if (t->disk.firmware == VAB_FW_UEFI)
    r |= buf_puts(&b,
                  ". This disk boots with UEFI only, which needs generation "
                  "2 and a VHDX: export `format: vhdx` instead.\n\n");
  else
    r |= buf_puts(&b, " (BIOS).\n\n");
  r |= buf_printf(&b,
                  "Hardware from the template: %u vCPU, %llu MiB of memory, "
                  "%u network adapter%s. The guest gets its address by DHCP "
                  "on every adapter.\n\n"
                  "```powershell\n"
                  "New-VM -Name \"%s\" -Generation %d -MemoryStartupBytes %lluMB `\n"
                  "       -VHDPath \"$PWD\\%s\" -SwitchName \"Default Switch\"\n"
                  "Set-VMProcessor -VMName \"%s\" -Count %u\n",
                  hw->cpus, (unsigned long long)(hw->memory / MIB), hw->nics,
                  hw->nics == 1 ? "" : "s", t->name, gen2 ? 2 : 1,
                  (unsigned long long)(hw->memory / MIB), file, t->name,
                  hw->cpus);
  if (gen2)
    r |= buf_printf(&b, "Set-VMFirmware -VMName \"%s\" -EnableSecureBoot Off\n",
                    t->name);
  for (unsigned i = 1; i < hw->nics; i++)
    r |= buf_printf(&b,
                    "Add-VMNetworkAdapter -VMName \"%s\" -SwitchName \"Default Switch\"\n",
                    t->name);
  r |= buf_printf(&b,
                  "Start-VM -Name \"%s\"\n"
                  "```\n\n"
                  "The serial console (GRUB and the kernel use ttyS0) is "
                  "reachable through a named pipe: `Set-VMComPort -VMName "
                  "\"%s\" -Number 1 -Path \\\\.\\pipe\\%s`.\n",
                  t->name, t->name, t->name);
  return finish(ctx, &b, r, text);
}
