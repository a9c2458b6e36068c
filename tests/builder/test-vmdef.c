/* builder/vmdef: the VM definitions written beside exported disks.  The
 * libvirt domain is checked with libvirt's own schema (virt-xml-validate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "builder/vocab.h"
#include "vab/vab.h"
#include "builder/vmdef.h"

static struct vab_template *load(struct vab_ctx *ctx, const char *yaml) {
  struct vab_load_opts opts = {.vocab = vab_template_vocab(), .use_environment = false};
  struct vab_template *t = NULL;
  if (vab_template_load_data(ctx, "vm.yaml", "/tmp", yaml, strlen(yaml), &opts,
                             &t) < 0) {
    for (size_t i = 0; i < vab_diag_count(ctx); i++)
      fprintf(stderr, "%s\n", vab_diag_get(ctx, i)->message);
    fail_msg("template did not load");
  }
  return t;
}

static const char *const uefi_template =
    "vab: 1\nname: web\ndescription: A <web> & more\n"
    "source: {bootstrap: {suite: bookworm}}\n"
    "disk: {firmware: uefi}\n"
    "hardware: {cpus: 4, memory: 3G, nics: 2, disk_bus: sata, nic_model: e1000}\n";

static const char *const bios_template =
    "vab: 1\nname: web\nsource: {bootstrap: {suite: bookworm}}\n"
    "disk: {firmware: bios}\n";

/* Run virt-xml-validate on text; its exit status. */
static int validate_domain(const char *xml) {
  char path[] = "/tmp/vab-vmdef-XXXXXX.xml";
  int fd = mkstemps(path, 4);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "virt-xml-validate %s domain >/dev/null 2>&1", path);
  int status = system(cmd);
  unlink(path);
  return status;
}

static void test_libvirt_domain_is_valid(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load(ctx, uefi_template);
  struct vab_vmdef_input in = {t, "/srv/images/web-0.qcow2", "qcow2", "debian12", 0};
  char *xml = NULL;
  assert_int_equal(vab_vmdef_libvirt(ctx, &in, &xml), 0);
  assert_non_null(strstr(xml, "<name>web</name>"));
  assert_non_null(strstr(xml, "<description>A &lt;web&gt; &amp; more</description>"));
  assert_non_null(strstr(xml, "<memory unit='KiB'>3145728</memory>"));
  assert_non_null(strstr(xml, "<vcpu>4</vcpu>"));
  assert_non_null(strstr(xml, "<os firmware='efi'>"));
  assert_non_null(strstr(xml, "<driver name='qemu' type='qcow2' discard='unmap'/>"));
  assert_non_null(strstr(xml, "<source file='/srv/images/web-0.qcow2'/>"));
  assert_non_null(strstr(xml, "<target dev='sda' bus='sata'/>"));
  assert_non_null(strstr(xml, "<model type='e1000'/>"));
  /* Two NICs. */
  assert_non_null(strstr(strstr(xml, "<interface") + 1, "<interface"));
  assert_int_equal(validate_domain(xml), 0);
  free(xml);
  vab_template_free(t);

  /* BIOS, the default SCSI bus and automatic NICs. */
  t = load(ctx, bios_template);
  in.t = t;
  assert_int_equal(vab_vmdef_libvirt(ctx, &in, &xml), 0);
  assert_null(strstr(xml, "firmware="));
  assert_non_null(strstr(xml, "<controller type='scsi' model='virtio-scsi'/>"));
  assert_non_null(strstr(xml, "<model type='virtio'/>"));
  assert_int_equal(validate_domain(xml), 0);
  /* A broken domain must fail the validator, or the checks above prove
   * nothing. */
  char *broken = strdup(xml);
  memcpy(strstr(broken, "<vcpu>"), "<vcpX>", 6);
  assert_int_not_equal(validate_domain(broken), 0);
  free(broken);
  free(xml);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_vmx(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load(ctx, uefi_template);
  struct vab_vmdef_input in = {t, "/out/web-0.vmdk", "vmdk", "debian12", 19};
  char *vmx = NULL;
  assert_int_equal(vab_vmdef_vmx(ctx, &in, &vmx), 0);
  assert_non_null(strstr(vmx, "virtualHW.version = \"19\"\n"));
  assert_non_null(strstr(vmx, "guestOS = \"debian12-64\"\n"));
  assert_non_null(strstr(vmx, "memsize = \"3072\"\n"));
  assert_non_null(strstr(vmx, "numvcpus = \"4\"\n"));
  assert_non_null(strstr(vmx, "firmware = \"efi\"\n"));
  assert_non_null(strstr(vmx, "sata0:0.fileName = \"web-0.vmdk\"\n"));
  assert_non_null(strstr(vmx, "ethernet1.virtualDev = \"e1000\"\n"));
  free(vmx);
  vab_template_free(t);
  t = load(ctx, bios_template);
  in.t = t;
  in.guest_os = NULL;
  in.hwversion = 0;
  assert_int_equal(vab_vmdef_vmx(ctx, &in, &vmx), 0);
  assert_non_null(strstr(vmx, "virtualHW.version = \"16\"\n"));
  assert_non_null(strstr(vmx, "guestOS = \"other5xlinux-64\"\n"));
  assert_null(strstr(vmx, "firmware"));
  assert_non_null(strstr(vmx, "scsi0.virtualDev = \"lsilogic\"\n"));
  assert_non_null(strstr(vmx, "ethernet0.virtualDev = \"vmxnet3\"\n"));
  assert_null(strstr(vmx, "ethernet1"));
  free(vmx);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

static void test_hyperv_generation(void **state) {
  (void)state;
  struct vab_ctx *ctx = vab_ctx_new();
  struct vab_template *t = load(ctx, uefi_template);
  struct vab_vmdef_input in = {t, "/out/web-0.vhdx", "vhdx", NULL, 0};
  char *md = NULL;
  assert_int_equal(vab_vmdef_hyperv(ctx, &in, &md), 0);
  assert_non_null(strstr(md, "**generation 2**"));
  assert_non_null(strstr(md, "-Generation 2 -MemoryStartupBytes 3072MB"));
  assert_non_null(strstr(md, "Set-VMFirmware -VMName \"web\" -EnableSecureBoot Off"));
  assert_non_null(strstr(md, "Add-VMNetworkAdapter"));
  free(md);
  /* UEFI on a VHD cannot boot on Hyper-V: the notes say so. */
  in.disk_format = "vhd";
  assert_int_equal(vab_vmdef_hyperv(ctx, &in, &md), 0);
  assert_non_null(strstr(md, "**generation 1**"));
  assert_non_null(strstr(md, "export `format: vhdx` instead"));
  free(md);
  vab_template_free(t);
  t = load(ctx, bios_template);
  in.t = t;
  in.disk_format = "vhdx";
  assert_int_equal(vab_vmdef_hyperv(ctx, &in, &md), 0);
  assert_non_null(strstr(md, "**generation 1** (BIOS)"));
  assert_null(strstr(md, "Set-VMFirmware"));
  free(md);
  vab_template_free(t);
  vab_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_libvirt_domain_is_valid),
    cmocka_unit_test(test_vmx),
    cmocka_unit_test(test_hyperv_generation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
